"""The benchmark: ``python -m reports bench`` (see ``--help``).

A bench run measures speed, not learning: for every model at its tutorial's input size
(``cells.TUTORIAL_INPUTS``) and every framework, step cells (reports/cells.py) time the
training step and inference on one synthetic batch, the step's peak memory, its FLOP rate, the
framework's GEMM rate and the other processes' CPU time while they measured; then the op
benchmarks (reports/opbench.py), the loop reference included. The step cells of a model run in
``--rounds`` interleaved rounds, one cell per framework in each, the frameworks' order rotated
from round to round (numpy torch tensorflow, torch tensorflow numpy, ...), so that a change in
the machine's load falls on every framework alike; each cell's spec records its ``round`` and
``position``. Cells run one at a time, each in its own process with the same thread count,
through the runner's machinery (reports/runner.py): the run directory, ``--resume``, failed and
skipped records and the report are those of ``python -m reports run``, and the newest bench run
is ``<out>/latest-bench`` (``<out>/latest`` stays the training report's). ``--check`` judges the
ratios against the targets in reports/bench_targets.json (reports/benchcheck.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import impls
from reference.models import MODELS

from . import benchcheck
from .cells import SPEC_DEFAULTS, TUTORIAL_INPUTS, cell_id, with_defaults
from .cells import record as make_record
from .opbench import OPS
from .rundir import DEFAULT_OUT, claim_run_dir, saved_run
from .runfile import load_run
from .runner import (
    HelpFormatter,
    execute_run,
    names_arg,
    not_installed,
    ordered_frameworks,
    plan_op_cells,
    render_report,
    succeeded,
)
from .runspec import UsageError, integer

STEP = SPEC_DEFAULTS["step"]
# Defaults of the options that define the matrix; argparse's defaults are None, so that
# --resume can tell which of them were given (they are then refused: the saved matrix runs).
DEFAULTS: dict[str, Any] = {"models": list(MODELS), "batch_size": STEP["batch_size"],
                            "dtype": STEP["dtype"], "warmup": STEP["warmup"],
                            "repeats": STEP["repeats"], "gemm_size": STEP["gemm_size"],
                            "op_preset": "full", "rounds": 3}
MATRIX_OPTIONS = ("frameworks", "models", "batch_size", "dtype", "threads", "warmup",
                  "repeats", "gemm_size", "op_preset", "no_ops", "ops", "run_id", "out",
                  "rounds")
LATEST = "latest-bench"


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark every model's training step and the ops in every framework",
        description="For every model at its tutorial's input size and every installed "
                    "framework: training-step latency (median, p90), throughput, inference "
                    "latency, the step's peak memory and GFLOP/s and the framework's GEMM "
                    "rate, in --rounds interleaved rounds (one cell per framework each, the "
                    "order rotated per round); then the op benchmarks with the loop "
                    "reference. Cells run one at a time, each in its own process with the "
                    "same thread count; the other processes' CPU time is recorded per cell. "
                    "Writes a run directory like `run` (docs/results.md), points "
                    "<out>/latest-bench at it and renders its report. --check judges NumPy's "
                    "ratios to PyTorch against reports/bench_targets.json.",
        formatter_class=HelpFormatter)
    p.set_defaults(handler=bench_command, parser=p)
    p.add_argument("--frameworks", type=names_arg(impls.BACKENDS), default=None,
                   help=f"comma-separated frameworks (default: {','.join(impls.BACKENDS)}); "
                        "one not installed is recorded as skipped with a note")
    p.add_argument("--models", type=names_arg(MODELS), default=None,
                   help=f"comma-separated models or 'all' (default: all: {','.join(MODELS)})")
    p.add_argument("--batch-size", type=integer(1), default=None,
                   help=f"images per step (default: {DEFAULTS['batch_size']})")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help=f"the models' dtype (default: {DEFAULTS['dtype']})")
    p.add_argument("--threads", type=integer(1), default=None,
                   help="compute threads of every cell, the same for every framework "
                        f"(intra-op; inter-op 1; BLAS) (default: the number of CPUs, "
                        f"{os.cpu_count()} here)")
    p.add_argument("--warmup", type=integer(0), default=None,
                   help=f"untimed steps before the timed ones (default: {DEFAULTS['warmup']})")
    p.add_argument("--repeats", type=integer(1), default=None,
                   help=f"timed steps, and timed inference calls, per cell (default: "
                        f"{DEFAULTS['repeats']})")
    p.add_argument("--rounds", type=integer(1), default=None,
                   help="interleaved rounds of step cells: each round runs one cell per "
                        "framework for every model, the frameworks' order rotated from one "
                        f"round to the next (default: {DEFAULTS['rounds']})")
    p.add_argument("--gemm-size", type=integer(0), default=None,
                   help="side of the square float32 matmul that measures each framework's "
                        f"GEMM rate; 0: none (default: {DEFAULTS['gemm_size']})")
    p.add_argument("--op-preset", choices=("quick", "full"), default=None,
                   help="op sizes; full includes the reference at N=64, C=3, 32x32, F=32, k=5 "
                        f"(about half a minute) (default: {DEFAULTS['op_preset']})")
    p.add_argument("--no-ops", action="store_true", help="no op benchmarks")
    p.add_argument("--ops", type=names_arg(OPS), default=None,
                   help=f"comma-separated ops to benchmark (default: all: {','.join(OPS)})")
    p.add_argument("--out", type=Path, default=None,
                   help=f"root of the run directories; the newest bench run is also "
                        f"<out>/{LATEST} (default: {DEFAULT_OUT})")
    p.add_argument("--run-id", default=None,
                   help="name of the run directory (default: the date and time)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="finish the bench run in RUN_DIR (after Ctrl-C, or to retry failed "
                        "cells): its saved settings are used and the cells whose "
                        "cells/<id>.json says ok for the same spec are not run again; options "
                        "that would change the run are refused")
    p.add_argument("--no-render", action="store_true", help="do not render the report")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (the per-cell status lines stay)")
    p.add_argument("--check", action="store_true",
                   help="after the run, print one line per target of --targets (model, "
                        "metric, threads, ratio [spread over the rounds], target, status) and "
                        "exit 1 unless every target is met; a target whose cells ran on a "
                        "loaded machine is unverified, not met. Without --threads, one run per "
                        "thread count of the targets (<run-id>-t2, <run-id>-t1)")
    p.add_argument("--check-runs", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                   help="check saved bench runs (e.g. one at 2 threads, one at 1) against "
                        "--targets without running anything; exit status as --check")
    p.add_argument("--targets", type=Path, default=benchcheck.TARGETS_PATH,
                   help="the targets file of --check (default: reports/bench_targets.json)")


def build_config(args: argparse.Namespace, threads: int | None = None) -> dict[str, Any]:
    """The bench run's matrix and settings from the parsed options (DEFAULTS fill the gaps);
    ``threads``: instead of --threads."""

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return DEFAULTS[name] if value is None else value

    return {
        "mode": "bench",
        "frameworks": list(dict.fromkeys(args.frameworks or impls.BACKENDS)),
        "models": list(dict.fromkeys(pick("models"))),
        "batch_size": pick("batch_size"),
        "dtype": pick("dtype"),
        "optimizer": STEP["optimizer"],
        "lr": STEP["lr"],
        "warmup": pick("warmup"),
        "repeats": pick("repeats"),
        "gemm_size": pick("gemm_size"),
        "threads": threads or args.threads or os.cpu_count() or 1,
        "rounds": pick("rounds"),
        "ops": not args.no_ops,
        "op_list": args.ops,
        "op_preset": pick("op_preset"),
    }


def plan(config: dict[str, Any], installed: list[str]
         ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(every cell's spec in run order, skipped records by cell id): the step cells by model,
    in ``rounds`` rounds of one cell per framework, the frameworks' order rotated by one each
    round (NumPy first in round 1); then the op cells. A saved run from before the rounds
    (no ``rounds`` in its config) plans its cells as it did: one each, no round."""
    specs: list[dict[str, Any]] = []
    skipped: dict[str, dict[str, Any]] = {}
    frameworks = ordered_frameworks(config)
    rounds = config.get("rounds")
    for model in config["models"]:
        input_shape, num_classes = TUTORIAL_INPUTS[model]
        for r in range(rounds or 1):
            shift = r % len(frameworks)
            order = frameworks[shift:] + frameworks[:shift]
            for position, fw in enumerate(order):
                placed = {} if rounds is None else {"round": r + 1, "position": position + 1}
                spec = with_defaults({
                    "kind": "step", "framework": fw, "model": model,
                    "input_shape": list(input_shape), "num_classes": num_classes,
                    **{k: config[k] for k in ("batch_size", "dtype", "optimizer", "lr",
                                              "warmup", "repeats", "gemm_size", "threads")},
                    **placed})
                specs.append(spec)
                if fw not in installed:
                    skipped[cell_id(spec)] = make_record(spec, "skipped",
                                                         note=not_installed(fw))
    plan_op_cells(config, installed, specs, skipped)
    return specs, skipped


def run_once(args: argparse.Namespace, threads: int | None, run_id: str | None,
             start: float) -> dict[str, Any] | None:
    """One bench run (or the --resume one): its results, or None after Ctrl-C."""
    saved = saved_run(args, "bench", MATRIX_OPTIONS)
    config = build_config(args, threads) if saved is None else saved["config"]
    specs, skipped = plan(config, impls.available())
    run_dir, created, continuing = claim_run_dir(
        argparse.Namespace(**{**vars(args), "run_id": run_id}), config, saved)
    # one cell at a time: cells side by side would compete for the cores they are timing
    header = {"run_id": run_dir.name, "created": created, "config": config,
              "execution": {"workers": 1, "scheduler": None, "timeout": 0.0,
                            "parallel": False}}
    results = execute_run("bench", run_dir, header, specs, skipped, {},
                          resume=continuing, progress=not args.no_progress,
                          latest=LATEST, start=start)
    if results is not None and not args.no_render:
        render_report(run_dir)
    return results


def print_check(runs: list[dict[str, Any]], targets: dict[str, Any]) -> int:
    lines, code = benchcheck.check(runs, targets)
    print("\n".join(lines), flush=True)
    return code


def bench_command(args: argparse.Namespace) -> int:
    """``python -m reports bench``: returns the exit status."""
    start = time.perf_counter()
    targets = None
    if args.check or args.check_runs:
        try:
            targets = benchcheck.load_targets(args.targets)
        except benchcheck.TargetsError as err:
            raise UsageError("--targets", str(err)) from None
    if args.check_runs:
        given = [f"--{name.replace('_', '-')}" for name in (*MATRIX_OPTIONS, "resume", "check")
                 if getattr(args, name, None) not in (None, False)]
        if given:
            raise UsageError("--check-runs", f"checks saved runs and runs nothing: "
                                             f"{', '.join(given)} would be ignored; leave "
                                             "them out")
        return print_check([load_run(path, "--check-runs") for path in args.check_runs],
                           targets)
    # --check without --threads (and not finishing a saved run): every thread count of the
    # targets, one run directory each
    counts = (targets["threads"] if args.check and args.threads is None and args.resume is None
              else [None])
    stamp = args.run_id or time.strftime("%Y%m%d-%H%M%S")
    runs = []
    for threads in counts:
        run_id = args.run_id if len(counts) == 1 else f"{stamp}-t{threads}"
        # each run's own seconds: the first from the command's start, the next from its own
        results = run_once(args, threads, run_id, start if not runs else time.perf_counter())
        if results is None:
            return 130
        if not succeeded(results):
            return 1
        runs.append(results)
    if args.check:
        return print_check(runs, targets)
    return 0
