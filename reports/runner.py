"""The measuring half of the comparison: ``python -m reports run`` (see ``--help``).

The runner plans a matrix of cells (docs/results.md): a train cell per framework x model x
dataset x seed and an op-benchmark cell per framework (plus the slow reference), runs every
cell in its own process (``python -m reports cell SPEC OUT``: one framework per process, the
same thread count in each), and writes the run directory: ``cells/<id>.json`` as each cell
ends, ``weights/<id>.npz``, then ``results.json``, ``results.csv`` and ``environment.json``;
the newest run is also ``<out>/latest``. The runner itself never imports PyTorch or
TensorFlow (their thread pools would compete with the cells'). ``python -m reports bench``
(reports/bench.py) plans its own cells and runs them through the same ``execute_run``.

Within a (model, dataset, seed) every framework starts from the same canonical weights (drawn
in NumPy from the seed), sees the same batches in the same order (``impls.data.batches`` with
the seed) and gets the same hyperparameters; dropout masks are drawn in NumPy from the seed
too (``shared_masks``), so the runner can add parity rows: how far each framework's loss curve
and final weights are from the NumPy backend's.

Cells run one at a time (``--workers 1``, clean timings), side by side in local processes
(``--workers N``) or on a dask.distributed cluster (``--scheduler ADDRESS``: each task runs
the cell process on its worker and sends back the record and the weights); rows of cells that
ran beside others say ``parallel: true``. A crash, an exception or a timeout makes a "failed"
record with the error and the run goes on; Ctrl-C keeps the finished cells, and ``--resume
RUN_DIR`` runs only the cells without an "ok" record for the same spec.

Nothing starts before everything is checked: the options (argparse types and
reports/runspec.py), the baseline and a resumed run (reports/runfile.py), the data (loaded
once here) and ``--out``; then the run directory is claimed (reports/rundir.py). Cells die
with the runner (reports/lifeline.py); the load other processes put on the machine is
sampled while they run (reports/loadwatch.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

import impls
from impls import data as datasets
from reference.models import MODELS, resolve

from . import baseline as baseline_module
from .cells import cell_id, make_row, safe_cell_id, with_defaults
from .cells import record as make_record
from .environment import THREAD_VARIABLES, environment
from .io import write_bytes_atomic, write_csv_atomic, write_json_atomic
from .loadwatch import LoadSampler, is_loaded, load_average, run_load
from .opbench import OPS
from .recipes import add_recipe_option
from .recipes import describe as describe_recipe
from .recipes import run_config as recipe_run_config
from .recipes import run_summary as recipe_summary
from .rundir import DEFAULT_OUT, claim_run_dir, read_records, same_data, saved_run, update_latest
from .runfile import load_results
from .runspec import (
    DTYPES,
    OPTIMIZERS,
    TRAINING_DEFAULTS,
    UsageError,
    check_dataset_options,
    init_name,
    integer,
    number,
    spec_hash,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK_ORDER = ("numpy", "torch", "tensorflow")
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"datasets": [TRAINING_DEFAULTS["dataset"]],
              "models": ["simple_cnn", "three_layer_cnn", "mlp"], "seeds": [0],
              "epochs": TRAINING_DEFAULTS["epochs"], "batch_size": TRAINING_DEFAULTS["batch_size"],
              "op_preset": "quick", "timeout": 900.0},
    # 3 epochs of Fashion-MNIST's 60,000 images: 1,800 steps of 100 per cell (quick: 3 x 43
    # steps of 32 digits)
    "full": {"datasets": ["fashion-mnist"], "models": list(MODELS), "seeds": [0, 1, 2],
             "epochs": 3, "batch_size": 100, "op_preset": "full", "timeout": 0.0},
    # --recipe NAME (reports/recipes.py): the recipe gives model, dataset and settings; a
    # tutorial's own epochs take hours, so no time limit
    "recipe": {"seeds": [0], "op_preset": "quick", "timeout": 0.0},
}
# options that define the matrix and its settings: --resume runs the saved ones and refuses these
MATRIX_OPTIONS = ("full", "frameworks", "models", "datasets", "data_dir", "dataset_options",
                  "epochs", "seeds", "optimizer", "lr", "batch_size", "init", "dtype", "threads",
                  "no_ops", "ops", "op_preset", "run_id", "out", "recipe")
STDERR_TAIL = 4000  # characters of a failed cell's stderr kept in its record


# ---------------------------------------------------------------------------------------------
# the command line


def names_arg(choices: Iterable[str] | None) -> Callable[[str], list[str]]:
    """argparse type: a comma-separated list, each name checked against ``choices``."""
    allowed = None if choices is None else tuple(choices)

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        if allowed is not None and names == ["all"]:
            return list(allowed)
        bad = [n for n in names if allowed is not None and n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"got {text!r}, expected a comma-separated list of {', '.join(allowed or ())}"
                " (or 'all')")
        return names
    return parse


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected integers >= 0 like 0,1,2")
    return seeds


def dataset_option(text: str) -> tuple[str, Any]:
    """argparse type: KEY=VALUE, the value read as JSON where it parses (else a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected KEY=VALUE like n_train=500")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless its help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "(default" in text
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    q, f, t = PRESETS["quick"], PRESETS["full"], TRAINING_DEFAULTS
    p = sub.add_parser(
        "run", help="measure the comparison matrix and write a run directory",
        description="Train every model in every installed framework and benchmark the ops, "
                    "each cell in its own process, then write the run directory "
                    "(docs/results.md) and render its report. Default: a quick run "
                    f"(dataset {','.join(q['datasets'])}, models {','.join(q['models'])}, "
                    f"seed 0, {q['epochs']} epochs of batches of {q['batch_size']}, small op "
                    f"sizes; a few minutes). --full: {','.join(f['datasets'])}, every model, "
                    f"seeds 0,1,2, {f['epochs']} epochs of batches of {f['batch_size']}, "
                    "bigger op sizes (hours). Options given explicitly override "
                    "either preset. Every option is checked before any cell starts. A "
                    "crashing cell is recorded as failed and the run goes on (a run in which "
                    "no cell succeeds exits with status 1); Ctrl-C keeps the finished cells "
                    "(finish with --resume RUN_DIR).",
        formatter_class=HelpFormatter)
    p.set_defaults(handler=run_command, parser=p)
    p.add_argument("--full", action="store_true",
                   help="the full matrix instead of the quick one")
    add_recipe_option(p)
    p.add_argument("--frameworks", type=names_arg(impls.BACKENDS), default=None,
                   help="comma-separated frameworks; one not installed is recorded as "
                        f"skipped with a note (default: {','.join(impls.BACKENDS)})")
    p.add_argument("--models", type=names_arg(MODELS), default=None,
                   help=f"comma-separated models or 'all' (default: {','.join(q['models'])}; "
                        "--full: all)")
    p.add_argument("--datasets", "--dataset", dest="datasets", type=names_arg(datasets.DATASETS),
                   default=None, help=f"comma-separated datasets (default: "
                                      f"{','.join(q['datasets'])}; --full: "
                                      f"{','.join(f['datasets'])})")
    p.add_argument("--data-dir", default=None,
                   help="directory of the dataset's files (default: the dataset's own)")
    p.add_argument("--dataset-option", dest="dataset_options", type=dataset_option, action="append",
                   default=None, metavar="KEY=VALUE",
                   help="a dataset option, repeatable (JSON values): n_train=500, "
                        "n_test=200, for synthetic also input_shape=[1,8,8], num_classes=10")
    p.add_argument("--epochs", type=integer(1), default=None,
                   help=f"epochs per train cell (default: {q['epochs']}; --full: {f['epochs']})")
    p.add_argument("--seeds", type=_seeds, default=None,
                   help="comma-separated seeds; each seeds the initial weights, the batch "
                        "order and the dropout masks (default: 0; --full: 0,1,2)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help="the optimizer of every train cell (auto implementation: the "
                        f"framework's own where it equals the textbook update) (default: "
                        f"{t['optimizer']})")
    p.add_argument("--lr", type=number(0.0, low_open=True), default=None,
                   help=f"learning rate (default: {t['lr']:g})")
    p.add_argument("--batch-size", type=integer(1), default=None,
                   help=f"training batch size (default: {q['batch_size']}; --full: "
                        f"{f['batch_size']})")
    p.add_argument("--init", type=init_name, default=None,
                   help="initialiser of every model's weights (he_normal, xavier_normal, "
                        "xavier_uniform, normal(STD)), or 'model' for each tutorial's own "
                        "(their tiny normal(0.01)/normal(0.001) inits need many more epochs) "
                        f"(default: {t['init']})")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help=f"the models' dtype (default: {t['dtype']})")
    p.add_argument("--threads", type=integer(1), default=None,
                   help="compute threads of every cell, the same for every framework "
                        "(intra-op; inter-op 1; BLAS) (default: the number of CPUs, "
                        f"{os.cpu_count()} here, divided by --workers)")
    p.add_argument("--no-ops", action="store_true", help="no op benchmarks")
    p.add_argument("--ops", type=names_arg(OPS), default=None,
                   help=f"comma-separated ops to benchmark (default: all: {','.join(OPS)})")
    p.add_argument("--op-preset", choices=("quick", "full"), default=None,
                   help="op sizes (default: quick; --full: full)")
    p.add_argument("--out", type=Path, default=None,
                   help="root of the run directories; the newest run is also <out>/latest "
                        f"(default: {DEFAULT_OUT})")
    p.add_argument("--run-id", default=None,
                   help="name of the run directory (default: the date and time); an existing "
                        "run's id continues that run only if every setting is the same")
    p.add_argument("--workers", type=integer(1), default=1,
                   help="cells run side by side in this many local processes (their rows "
                        "say parallel=true: timings then compete for cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the cells on this dask.distributed scheduler (e.g. "
                        "tcp://host:8786); each task runs the cell process on its worker, "
                        "which needs the project installed")
    p.add_argument("--timeout", type=number(0.0), default=None,
                   help="seconds before a cell is killed and recorded as failed; 0: no limit "
                        f"(default: {q['timeout']:g}; --full: no limit)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="finish the run in RUN_DIR (after Ctrl-C, or to retry failed cells): "
                        "its saved matrix and settings are used (options that would change "
                        "them are refused), the cells whose cells/<id>.json says ok for the "
                        "same spec are not run again; --workers, --scheduler, --timeout and "
                        "the baseline options apply")
    p.add_argument("--baseline", type=Path, default=None, metavar="PATH",
                   help="an earlier results.json (or its run directory) to compare with, "
                        "checked before the run; writes baseline.json")
    p.add_argument("--check", action="store_true",
                   help="exit with status 1 on a regression against --baseline (a failed "
                        "cell counts as one), and when the comparison is vacuous (nothing "
                        "compared) or partial (baseline cells missing from this run; narrow "
                        "the baseline with --baseline-cells)")
    p.add_argument("--baseline-cells", type=_patterns, default=None, metavar="GLOBS",
                   help="compare only the baseline cells whose ids match one of these "
                        "comma-separated glob patterns, e.g. 'train-numpy-*' (default: every "
                        "baseline cell, each of which this run must then have)")
    p.add_argument("--max-accuracy-drop", type=number(0.0, high=1.0),
                   default=baseline_module.DEFAULT_MAX_ACCURACY_DROP,
                   help="a final test accuracy lower than the baseline's by more than this "
                        "(absolute) is a regression")
    p.add_argument("--max-slowdown", type=number(0.0, low_open=True),
                   default=baseline_module.DEFAULT_MAX_SLOWDOWN,
                   help="a median step latency or epoch time more than this many times the "
                        "baseline's is a regression")
    p.add_argument("--no-render", action="store_true", help="do not render the report")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (the per-cell status lines stay; there is no bar "
                        "either when stderr is not a terminal)")


def _patterns(text: str) -> list[str]:
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected comma-separated cell-id "
                                         "glob patterns like train-numpy-*")
    return patterns


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's matrix and settings from the parsed options (the preset, then
    TRAINING_DEFAULTS, fill the gaps); a bad dataset option raises UsageError."""
    preset = PRESETS["full" if args.full else "quick"]

    def pick(name: str) -> Any:
        value = getattr(args, name)
        if value is not None:
            return value
        return preset[name] if name in preset else TRAINING_DEFAULTS[name]

    options = dict(args.dataset_options or [])
    chosen = list(dict.fromkeys(pick("datasets")))
    for dataset in chosen:
        try:
            check_dataset_options(dataset, options)
        except (ValueError, TypeError) as err:
            raise UsageError("--dataset-option", f"{err} (dataset {dataset})") from None
    init = pick("init")
    return {
        "mode": "full" if args.full else "quick",
        "frameworks": list(dict.fromkeys(args.frameworks or impls.BACKENDS)),
        "models": list(dict.fromkeys(pick("models"))),
        "datasets": chosen,
        "data_dir": args.data_dir,
        "dataset_options": options,
        "seeds": list(dict.fromkeys(pick("seeds"))),
        "epochs": pick("epochs"),
        "optimizer": pick("optimizer"),
        "lr": pick("lr"),
        "batch_size": pick("batch_size"),
        "init": None if init == "model" else init,
        "dtype": pick("dtype"),
        "shared_masks": True,
        "threads": args.threads or max(1, (os.cpu_count() or 1) // args.workers),
        "ops": not args.no_ops,
        "op_list": args.ops,
        "op_preset": pick("op_preset"),
    }


# ---------------------------------------------------------------------------------------------
# planning


def not_installed(framework: str) -> str:
    return (f"{framework} is not installed (pip install 'cnn-rosetta[{framework}]'): "
            "skipped")


def plan(config: dict[str, Any], installed: list[str],
         dataset_shapes: dict[str, tuple[tuple[int, int, int], int]]
         ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(every cell's spec in run order, skipped records by cell id).

    Train cells go by (dataset, model, seed) with NumPy first, then the op cells.
    """
    frameworks = ordered_frameworks(config)
    specs: list[dict[str, Any]] = []
    skipped: dict[str, dict[str, Any]] = {}
    for dataset in config["datasets"]:
        input_shape, num_classes = dataset_shapes[dataset]
        for model in config["models"]:
            try:
                resolve(model, input_shape, num_classes, **config.get("model_options", {}))
                misfit = None
            except (ValueError, TypeError) as err:
                misfit = f"{model} does not fit {dataset} {input_shape}: {err}"
            for seed in config["seeds"]:
                for fw in frameworks:
                    spec = with_defaults({
                        "kind": "train", "framework": fw, "model": model,
                        "dataset": dataset, "seed": seed, "epochs": config["epochs"],
                        "optimizer": config["optimizer"], "lr": config["lr"],
                        "batch_size": config["batch_size"], "dtype": config["dtype"],
                        "init": config.get("init"),
                        "data_dir": config["data_dir"],
                        "dataset_options": config["dataset_options"],
                        "shared_masks": config["shared_masks"], "threads": config["threads"],
                        # a recipe's model and optimizer options (other runs have none)
                        **{key: config[key] for key in ("model_options", "optimizer_options")
                           if config.get(key)}})
                    specs.append(spec)
                    note = misfit or (None if fw in installed else not_installed(fw))
                    if note:
                        skipped[cell_id(spec)] = make_record(spec, "skipped", note=note)
    plan_op_cells(config, installed, specs, skipped)
    return specs, skipped


def ordered_frameworks(config: dict[str, Any]) -> list[str]:
    """The run's frameworks, NumPy first (FRAMEWORK_ORDER), unknown ones last."""
    return sorted(config["frameworks"],
                  key=lambda fw: FRAMEWORK_ORDER.index(fw) if fw in FRAMEWORK_ORDER
                  else len(FRAMEWORK_ORDER))


def plan_op_cells(config: dict[str, Any], installed: list[str], specs: list[dict[str, Any]],
                  skipped: dict[str, dict[str, Any]]) -> None:
    """Append an op-benchmark cell per framework and the reference's (if ``config["ops"]``)
    to ``specs``; those of frameworks not installed go into ``skipped`` too."""
    if not config["ops"]:
        return
    for fw in [*ordered_frameworks(config), "reference"]:
        spec = with_defaults({"kind": "ops", "framework": fw, "preset": config["op_preset"],
                              "threads": config["threads"]})
        if config["op_list"]:
            spec["ops"] = config["op_list"]
        specs.append(spec)
        if fw != "reference" and fw not in installed:
            skipped[cell_id(spec)] = make_record(spec, "skipped", note=not_installed(fw))


def _checksum(a: np.ndarray) -> dict[str, Any]:
    return {"shape": list(a.shape), "dtype": str(a.dtype),
            "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}


def dataset_facts(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple]]:
    """Checksums of every dataset as the cells will load it, and its (input_shape, classes).

    Loads each dataset once here (NumPy only), so a missing file stops the run before any
    cell starts, with the loader's message saying how to get it.
    """
    facts, shapes = {}, {}
    for name in config["datasets"]:
        (x_train, y_train), (x_test, y_test) = datasets.load_dataset(
            name, config["data_dir"], **config["dataset_options"])
        info = datasets.dataset_info(name, **config["dataset_options"])
        shapes[name] = (tuple(x_train.shape[1:]), info.num_classes)
        facts[name] = {"data_dir": config["data_dir"], "options": config["dataset_options"],
                       "num_classes": info.num_classes,
                       **{part: _checksum(a) for part, a in (
                           ("x_train", x_train), ("y_train", y_train), ("x_test", x_test),
                           ("y_test", y_test))}}
    return facts, shapes


# ---------------------------------------------------------------------------------------------
# running one cell (also on a dask worker: everything it needs is in its arguments)

_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()  # set on Ctrl-C: a cell process starting now is ended at once


def cell_environment(threads: int) -> dict[str, str]:
    """The cell process's environment: TensorFlow quiet, every thread pool sized alike."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def _kill(proc: subprocess.Popen) -> None:
    """Kill the cell process and anything it started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()


def running_cell_pids() -> list[int]:
    with _running_lock:
        return [proc.pid for proc in _running]


def kill_running_cells() -> None:
    with _running_lock:
        _stopping.set()
        for proc in list(_running):
            _kill(proc)


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= STDERR_TAIL else "..." + text[-STDERR_TAIL:]


def execute_cell(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run ``spec`` in a fresh ``python -m reports cell`` process; return ``{"record",
    "weights"}`` (the record, its status "ok" or "failed"; the final weights as .npz bytes or
    None). Never raises for a failing cell: its error (the traceback or the stderr tail)
    goes into the record."""
    root = Path(__file__).resolve().parents[1]  # this machine's copy of the project
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnn-rosetta-cell-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        weights_path = Path(tmp) / "weights.npz"
        spec_path.write_text(json.dumps({**spec, "weights_path": str(weights_path)}),
                             encoding="utf-8")
        # the cell dies with this process and removes tmp if this process is killed
        # (reports/lifeline.py); on a dask worker, with the worker
        proc = subprocess.Popen(
            [sys.executable, "-m", "reports", "cell", str(spec_path), str(out_path),
             "--parent-pid", str(os.getpid()), "--cleanup-dir", tmp],
            cwd=root, env=cell_environment(spec.get("threads") or os.cpu_count() or 1),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # Ctrl-C reaches the runner only; it ends the cells
        with _running_lock:
            _running.add(proc)
            if _stopping.is_set():
                _kill(proc)
        try:
            _, stderr = proc.communicate(timeout=timeout or None)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill(proc)
            _, stderr = proc.communicate()
            timed_out = True
        finally:
            with _running_lock:
                _running.discard(proc)
        seconds = time.perf_counter() - start
        written = json.loads(out_path.read_text(encoding="utf-8")) if out_path.is_file() else {}
        weights = weights_path.read_bytes() if weights_path.is_file() else None
    if timed_out:
        error = f"timed out after {timeout:g} s and was killed\n{_tail(stderr)}"
    elif proc.returncode != 0:
        error = (written.get("error")
                 or f"exit status {proc.returncode}\n{_tail(stderr) or '(no stderr)'}")
    else:
        error = None
    if error is None and written.get("status") == "ok":
        rec = {**written, "seconds": seconds}
    else:
        rec = make_record(spec, "failed", error=error or "the cell wrote no record",
                          seconds=seconds, environment=written.get("environment"))
        weights = None
    rec["spec"] = spec
    return {"record": rec, "weights": weights}


# ---------------------------------------------------------------------------------------------
# executing the matrix


class Interrupted(Exception):
    """Ctrl-C during the run: the finished cells are saved."""


def _local(specs: list[dict], workers: int, timeout: float | None,
           done: Callable[[dict], None], started: Callable[[dict], None]) -> None:
    def start(spec: dict) -> dict:
        started(spec)
        return execute_cell(spec, timeout)

    _stopping.clear()
    pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cell")
    pending = [pool.submit(start, spec) for spec in specs]
    try:
        for fut in futures.as_completed(pending):
            done(fut.result())
    except BaseException as err:  # Ctrl-C, or saving a record failed: end the other cells
        for fut in pending:
            fut.cancel()
        kill_running_cells()
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted from None
        raise
    pool.shutdown(wait=True)


def _dask(specs: list[dict], address: str, timeout: float | None,
          done: Callable[[dict], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as err:
        raise ImportError("--scheduler needs dask.distributed: pip install "
                          "'cnn-rosetta[report]' (or pip install 'dask[distributed]')") from err
    client = Client(address)
    try:
        tasks = {client.submit(execute_cell, spec, timeout, pure=False): spec
                 for spec in specs}
        try:
            for fut in as_completed(list(tasks)):
                try:
                    result = fut.result()
                except Exception as err:  # the task itself died (a lost worker, ...)
                    spec = tasks[fut]
                    result = {"record": make_record(spec, "failed",
                                                    error=f"dask task failed: {err!r}"),
                              "weights": None}
                done(result)
        except KeyboardInterrupt:
            client.cancel(list(tasks))
            raise Interrupted from None
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# parity


def _relative_dev(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    dev = float(np.max(np.abs(a - b))) if a.size else 0.0
    return dev / scale if scale > 0 else dev


def parity_rows(records: list[dict[str, Any]], weights_dir: Path) -> list[dict[str, Any]]:
    """Each non-NumPy train cell against the NumPy cell of its (model, dataset, seed):
    ``parity_loss_max_dev`` = max|a - b| / max|b| over the per-step losses,
    ``parity_weights_max_dev`` = the largest such deviation over the final weight arrays,
    ``parity_loss_dev`` = |a - b| / max|b| per step."""
    ok = [r for r in records if r["status"] == "ok" and r["spec"]["kind"] == "train"]
    group = ("model", "dataset", "seed")
    numpy_cells = {tuple(r["spec"][k] for k in group): r for r in ok
                   if r["spec"]["framework"] == "numpy"}
    rows = []
    for rec in ok:
        spec = rec["spec"]
        ref = numpy_cells.get(tuple(spec[k] for k in group))
        if spec["framework"] == "numpy" or ref is None:
            continue
        keys = {k: spec[k] for k in ("framework", "model", "dataset", "seed")}

        def row(metric: str, value: float, rec: dict = rec, keys: dict = keys,
                **fields: Any) -> dict:
            return make_row(rec["cell_id"], metric, value, "relative", kind="train",
                            parallel=rec["parallel"], **keys, **fields)

        losses = [(r["epoch"], r["step"], r["value"]) for r in rec["rows"]
                  if r["metric"] == "step_loss"]
        ref_losses = [r["value"] for r in ref["rows"] if r["metric"] == "step_loss"]
        n = min(len(losses), len(ref_losses))
        if n:
            a = np.array([v for _, _, v in losses[:n]])
            b = np.array(ref_losses[:n])
            scale = float(np.max(np.abs(b))) or 1.0
            rows.append(row("parity_loss_max_dev", _relative_dev(a, b)))
            rows += [row("parity_loss_dev", abs(x - y) / scale, epoch=e, step=s)
                     for (e, s, x), y in zip(losses[:n], b)]
        mine = weights_dir / f"{rec['cell_id']}.npz"
        theirs = weights_dir / f"{ref['cell_id']}.npz"
        if mine.is_file() and theirs.is_file():
            with np.load(mine) as wa, np.load(theirs) as wb:
                common = sorted(set(wa.files) & set(wb.files))
                if common:
                    rows.append(row("parity_weights_max_dev", max(
                        _relative_dev(wa[k].astype(np.float64), wb[k].astype(np.float64))
                        for k in common)))
    return rows


# ---------------------------------------------------------------------------------------------
# the run directory


def write_results(run_dir: Path, header: dict[str, Any], specs: list[dict[str, Any]],
                  env: dict[str, Any], complete: bool, seconds: float) -> dict[str, Any]:
    """results.json, results.csv and environment.json from the saved cell records."""
    records = read_records(run_dir, specs)
    ordered = [records[cell_id(s)] for s in specs if cell_id(s) in records]
    rows = [row for rec in ordered for row in rec.get("rows", [])]
    rows += parity_rows(ordered, run_dir / "weights")
    load = header.get("load") or {}
    load = run_load(load.get("start"), [rec.get("load") or {} for rec in ordered],
                    load.get("threads", header["config"]["threads"]),
                    load.get("cores", os.cpu_count() or 1))
    results = {**header, "load": load, "complete": complete, "seconds": seconds,
               "cells": [{k: v for k, v in rec.items() if k not in ("rows", "environment")}
                         for rec in ordered],
               "rows": rows}
    write_json_atomic(run_dir / "results.json", results)
    write_csv_atomic(run_dir / "results.csv", rows)
    write_json_atomic(run_dir / "environment.json", {
        **env, "cells": {rec["cell_id"]: rec.get("environment") for rec in ordered}})
    return results


def busy_machine_warning(threads: int, workers: int) -> str | None:
    """A warning when other processes already keep cores busy: OpenMP and OpenBLAS pools
    (PyTorch, NumPy) that expect every core they were given then wait on descheduled
    threads, and step times inflate many times over (measured here: a NumPy MLP step
    1.5 ms with 1 thread, 5.3 ms median and 84 ms p90 with 2 threads on 2 busy cores)."""
    load, cores = load_average(), os.cpu_count() or 1
    if load is None or load + threads * workers <= cores + 0.5:
        return None
    return (f"note: {cores} cores, load average {load:.2f} before the run and "
            f"{threads * workers} cell threads at a time: the cores are oversubscribed, so "
            "timings (PyTorch and NumPy above all) will be inflated; use a quiet machine, "
            "fewer --threads or fewer --workers")


def _fmt(value: Any, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def _status_line(rec: dict[str, Any]) -> str:
    head = f"{rec['cell_id']}: {rec['status']}"
    if rec["status"] == "skipped":
        return f"{head} ({rec['note']})"
    if rec["status"] == "failed":
        last = (rec.get("error") or "").strip().splitlines() or ["?"]
        return f"{head} after {rec['seconds']:.1f} s: {last[-1][:200]}"
    values = {r["metric"]: r["value"] for r in rec["rows"]}
    loaded = " (machine loaded)" if rec.get("loaded") else ""
    if rec["spec"]["kind"] == "step":
        return (f"{head} in {rec['seconds']:.1f} s: step "
                f"{_fmt(values.get('step_latency_median'), '.2f')} ms, "
                f"{_fmt(values.get('throughput'), '.0f')} images/s, "
                f"{_fmt(values.get('step_gflops'), '.1f')} GFLOP/s{loaded}")
    if rec["spec"]["kind"] == "train":
        return (f"{head} in {rec['seconds']:.1f} s: test accuracy "
                f"{_fmt(values.get('test_accuracy'), '.4f')}, step "
                f"{_fmt(values.get('step_latency_median'), '.2f')} ms, "
                f"{_fmt(values.get('throughput'), '.0f')} images/s{loaded}")
    return f"{head} in {rec['seconds']:.1f} s: {len(rec['rows'])} timings{loaded}"


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the bar is a nicety; tqdm comes with the "report" extra
        return None
    return tqdm(total=total, initial=initial, unit="cell", desc="cells", dynamic_ncols=True)


def _say(bar: Any, text: str) -> None:
    if bar is not None:
        bar.write(text)
    else:
        print(text, flush=True)


def render_report(run_dir: Path) -> None:
    if importlib.util.find_spec("reports.render") is None:
        print("note: no reports/render.py: report not rendered (results are saved)")
        return
    try:
        from .render import render

        written = render(run_dir)
    except Exception as err:  # the measurements are saved whatever the renderer does
        print(f"note: rendering failed ({type(err).__name__}: {err}); the results are saved; "
              f"render again with: python -m reports render {run_dir}", file=sys.stderr)
        return
    report = written.get("report.html") if isinstance(written, dict) else None
    print(f"report: {report or run_dir}")


def execute_run(command: str, run_dir: Path, header: dict[str, Any],
                specs: list[dict[str, Any]], skipped: dict[str, dict[str, Any]],
                env: dict[str, Any], *, resume: bool, workers: int = 1,
                scheduler: str | None = None, timeout: float | None = None,
                progress: bool = True, latest: str = "latest",
                start: float | None = None) -> dict[str, Any] | None:
    """Run the planned cells not yet ok in ``run_dir`` (which exists) and write the run
    directory.

    ``header``: run_id, created, config, execution; ``env``: the runner's environment.json
    entries besides the common ones. Saves the skipped records, runs the rest (status lines,
    a progress bar, the machine's load sampled, reports/loadwatch.py), writes results.json/csv
    and environment.json, and points ``<out>/<latest>`` at the run if a cell in it is ok.
    Returns the results, or None after Ctrl-C (the finished cells kept; the message says how
    to finish with ``python -m reports <command> --resume``).
    """
    run_start = time.perf_counter() if start is None else start
    config = header["config"]
    parallel = header["execution"]["parallel"]
    cores = os.cpu_count() or 1
    header = {**header, "load": {"threads": config["threads"] * (
        1 if scheduler is not None else workers), "cores": cores, "start": load_average()}}
    env = {**environment(None), "runner_pid": os.getpid(), "threads": config["threads"],
           "installed_frameworks": impls.available(), **env,
           "load_average_at_start": header["load"]["start"]}
    warning = busy_machine_warning(config["threads"], workers)
    if warning:
        print(warning, file=sys.stderr)
    if not resume:
        write_results(run_dir, header, [], env, complete=False, seconds=0.0)

    previous = read_records(run_dir, specs)
    finished = {cid for cid, rec in previous.items() if rec.get("status") == "ok"}
    for cid, rec in skipped.items():
        write_json_atomic(run_dir / "cells" / f"{cid}.json", {**rec,
                                                             "spec_hash": spec_hash(rec["spec"])})
    todo = [s for s in specs if cell_id(s) not in finished and cell_id(s) not in skipped]
    print(f"{command} {header['run_id']}: {len(specs)} cells ({len(finished)} already done, "
          f"{len(skipped)} skipped, {len(todo)} to run; "
          f"{'parallel' if parallel else 'one at a time'}, {config['threads']} threads each) "
          f"-> {run_dir}", flush=True)
    # a bar only on a terminal: in a log its redraws are noise (the status lines stay)
    bar = _progress(len(specs), len(specs) - len(todo), progress and sys.stderr.isatty())
    for rec in skipped.values():
        _say(bar, _status_line(rec))

    running: dict[str, float] = {}  # cell id -> monotonic start
    sampler = LoadSampler(running_cell_pids)

    def show_running() -> None:
        if bar is not None:  # tqdm locks: callable from the pool's threads
            bar.set_postfix_str(("running " + ", ".join(sorted(running))) if running else "")

    def started(spec: dict[str, Any]) -> None:
        running[cell_id(spec)] = time.monotonic()
        show_running()

    def done(result: dict[str, Any]) -> None:
        rec = result["record"]
        began = running.pop(rec["cell_id"], None)
        show_running()
        rec["parallel"] = parallel
        for row in rec["rows"]:
            row["parallel"] = parallel
        # on a dask cluster the cell ran on another machine: this one's load says nothing
        rec["load"] = ({"start": None, "max": None} if began is None else
                       sampler.cell(began, time.monotonic()))
        rec["loaded"] = is_loaded(rec["load"].values(), header["load"]["threads"])
        rec["spec_hash"] = spec_hash(rec["spec"])
        cid = safe_cell_id(rec["spec"])
        if result["weights"] is not None:
            write_bytes_atomic(run_dir / "weights" / f"{cid}.npz", result["weights"])
        write_json_atomic(run_dir / "cells" / f"{cid}.json", rec)
        _say(bar, _status_line(rec))
        if bar is not None:
            bar.update()

    interrupted = False
    try:
        with sampler:
            if scheduler is not None:
                _dask(todo, scheduler, timeout, done)
            else:
                _local(todo, workers, timeout, done, started)
    except Interrupted:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    results = write_results(run_dir, header, specs, env, complete=not interrupted,
                            seconds=time.perf_counter() - run_start)
    if interrupted:
        print(f"interrupted: the finished cells are saved in {run_dir}; finish the run with: "
              f"python -m reports {command} --resume {run_dir}", file=sys.stderr)
        return None
    status = {s: sum(c["status"] == s for c in results["cells"])
              for s in ("ok", "failed", "skipped")}
    print(f"{status['ok']} ok, {status['failed']} failed, {status['skipped']} skipped in "
          f"{results['seconds']:.1f} s; results: {run_dir / 'results.json'}")
    if results["load"]["loaded"]:
        print(f"note: the machine was loaded during the run (load average "
              f"{results['load']['start']} at start, other processes' load up to "
              f"{results['load']['max']} while it ran, {header['load']['threads']} cell "
              f"threads at a time, {cores} cores): its timings are marked as unreliable",
              file=sys.stderr)
    if status["ok"]:
        update_latest(run_dir, latest)
    else:
        print(f"error: no cell succeeded; {run_dir.parent / latest} was not moved",
              file=sys.stderr)
    return results


def succeeded(results: dict[str, Any]) -> bool:
    """Whether any cell of the run is ok (a run where none is exits with status 1)."""
    return any(c["status"] == "ok" for c in results["cells"])


def run_command(args: argparse.Namespace) -> int:
    """``python -m reports run``: returns the exit status. Everything is checked (options,
    baseline, data, --out) before the run directory is made or any cell starts."""
    run_start = time.perf_counter()
    if args.check and args.baseline is None:
        raise UsageError("--check", "needs --baseline PATH (the results to compare with)")
    if args.baseline_cells and args.baseline is None:
        raise UsageError("--baseline-cells", "needs --baseline PATH")
    baseline = None if args.baseline is None else load_results(args.baseline)
    saved = saved_run(args, "run", MATRIX_OPTIONS)
    if saved is not None:
        config = saved["config"]
    elif args.recipe is not None:  # the recipe's settings where no option is given
        config = recipe_run_config(args, build_config)
    else:
        config = build_config(args)
    if config.get("recipe"):
        print(describe_recipe(config["recipe"]), flush=True)
    preset = PRESETS[config["mode"]]
    timeout = preset["timeout"] if args.timeout is None else args.timeout
    parallel = args.workers > 1 or args.scheduler is not None
    execution = {"workers": args.workers, "scheduler": args.scheduler, "timeout": timeout,
                 "parallel": parallel}

    facts, shapes = dataset_facts(config)
    if saved is not None:
        same_data(Path(args.resume) / "environment.json", facts)
    specs, skipped = plan(config, impls.available(), shapes)
    run_dir, created, continuing = claim_run_dir(args, config, saved)
    header = {"run_id": run_dir.name, "created": created, "config": config,
              "execution": execution}
    results = execute_run("run", run_dir, header, specs, skipped, {"datasets": facts},
                          resume=continuing, workers=args.workers,
                          scheduler=args.scheduler, timeout=timeout,
                          progress=not args.no_progress, start=run_start)
    if results is None:
        return 130
    code = 0 if succeeded(results) else 1
    if config.get("recipe"):
        print(recipe_summary(results))
    if baseline is not None:
        comparison = baseline_module.compare(
            results, baseline, max_accuracy_drop=args.max_accuracy_drop,
            max_slowdown=args.max_slowdown, fail_on_failed_cells=args.check,
            cells=args.baseline_cells)
        write_json_atomic(run_dir / "baseline.json", baseline_module.baseline_document(
            baseline, args.baseline, comparison))
        print("\n".join(baseline_module.summary_lines(comparison)))
        if args.check and not baseline_module.passed(comparison):
            code = 1
    if not args.no_render:
        render_report(run_dir)
    return code
