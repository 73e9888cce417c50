"""``python -m reports experiment NAME``: run one experiment in every framework, write its run dir.

Each framework runs in its own process (``python -m reports.experiments.runner SPEC OUT``, as
the comparison report's cells do: PyTorch and TensorFlow in one process slow each other down),
one after the other, with ``--threads`` compute threads (default 1: these networks are tiny, and
one thread per process was faster than two on this 2-core machine). Every process builds its
model from the same canonical weights (reference.models.initial_weights from the seed), walks
the same batches (impls.data.batches with the seed) and draws the same dropout masks
(train_step's rng). The run directory is written once everything has run, every file
atomically, results.json last: a directory with a results.json is a finished run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import impls

from .. import io
from ..environment import environment
from ..render.doc import Para, code
from . import common, get

STDERR_TAIL = 2000


# ---------------------------------------------------------------------------------------------
# one framework, in this process (the worker)


def run_here(name: str, framework: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run experiment ``name`` in ``framework`` in this process: {"rows", "tables", ...}."""
    start = time.perf_counter()
    result = get(name).run(framework, config)
    return {"status": "ok", "rows": result["rows"], "tables": result.get("tables", {}),
            "seconds": time.perf_counter() - start, "detail": result.get("seconds", {}),
            "environment": environment(framework)}


def worker_main(argv: list[str]) -> int:
    """``python -m reports.experiments.runner SPEC OUT``: the spec's experiment in its framework,
    the result written to OUT as JSON (atomically); status 1 and the error there on a failure."""
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    from ..cells import configure_threads

    try:
        configure_threads(spec["framework"], spec["threads"])
        result = run_here(spec["name"], spec["framework"], spec["config"])
    except Exception as err:  # the driver reports it and runs the other frameworks
        import traceback

        io.write_json_atomic(out_path, {"status": "failed", "error": f"{type(err).__name__}: "
                                        f"{err}", "traceback": traceback.format_exc()})
        return 1
    io.write_json_atomic(out_path, result)
    return 0


# ---------------------------------------------------------------------------------------------
# the driver


def run_subprocess(name: str, framework: str, config: dict[str, Any],
                   threads: int) -> dict[str, Any]:
    """Run experiment ``name`` in ``framework`` in a fresh process; never raises for a failing
    framework: its error goes into the result ({"status": "failed", "error": ...})."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnn-rosetta-experiment-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({"name": name, "framework": framework,
                                         "config": config, "threads": threads}),
                             encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "reports.experiments.runner",
                               str(spec_path), str(out_path)], cwd=root, env=env,
                              capture_output=True, text=True)
        written = (json.loads(out_path.read_text(encoding="utf-8"))
                   if out_path.is_file() else {})
    if proc.returncode != 0 or written.get("status") != "ok":
        tail = proc.stderr.strip()[-STDERR_TAIL:]
        return {"status": "failed", "wall_seconds": time.perf_counter() - start,
                "error": written.get("error") or f"exit status {proc.returncode}: {tail}"}
    return {**written, "wall_seconds": time.perf_counter() - start}


def make_config(name: str, full: bool = False, seed: int = 0, dtype: str = "float64",
                data_dir: str | None = None, overrides: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The experiment's quick (or full) settings plus the run's; ``overrides`` replace settings
    by name (the tests' tiny sizes), and only settings the experiment has."""
    experiment = get(name)
    config = {**(experiment.full if full else experiment.quick), "size": "full" if full else
              "quick", "seed": seed, "dtype": dtype, "data_dir": data_dir}
    unknown = sorted(set(overrides or {}) - set(config))
    if unknown:
        raise ValueError(f"overrides: got {unknown}, expected settings of {name}: "
                         f"{', '.join(config)}")
    for key, value in (overrides or {}).items():  # a list of names: some of the defaults
        choices = config[key]
        if (isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)
                and (not isinstance(value, list) or not value
                     or not set(value) <= set(choices))):
            raise ValueError(f"overrides[{key!r}]: got {value!r}, expected a non-empty list of "
                             f"some of {', '.join(choices)}")
    return {**config, **(overrides or {}), **({"size": "custom"} if overrides else {})}


def run_experiment(name: str, out: str | os.PathLike, *, full: bool = False,
                   frameworks: list[str] | tuple[str, ...] = impls.BACKENDS, seed: int = 0,
                   dtype: str = "float64", data_dir: str | None = None, threads: int = 1,
                   in_process: bool = False, overrides: dict[str, Any] | None = None,
                   command: str | None = None) -> dict[str, Any]:
    """Run experiment ``name`` in each of ``frameworks`` (each in its own process unless
    ``in_process``) and write the run directory ``out``; return results.json's content.
    ``overrides``: settings replaced by name (see make_config); ``command``: how it was asked
    for, for the report (default: the call)."""
    experiment = get(name)
    for arg, value, low in (("seed", seed, 0), ("threads", threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{arg}: got {value!r}, expected an integer >= {low}")
    unknown = [f for f in frameworks if f not in impls.BACKENDS]
    if unknown or not frameworks:
        raise ValueError(f"frameworks: got {list(frameworks)!r}, expected some of "
                         f"{', '.join(impls.BACKENDS)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: got {dtype!r}, expected 'float32' or 'float64'")
    config = make_config(name, full, seed, dtype, data_dir, overrides)
    runs: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for framework in frameworks:
        if not impls.is_available(framework):
            runs[framework] = {"status": "skipped", "error": f"{framework} is not installed "
                               f"(pip install 'cnn-rosetta[{framework}]')"}
        elif in_process:
            runs[framework] = run_here(name, framework, config)
        else:
            runs[framework] = run_subprocess(name, framework, config, threads)
    rows = [row for run in runs.values() for row in run.get("rows", [])]
    tables: dict[str, list] = {}
    for run in runs.values():
        for table, table_rows in run.get("tables", {}).items():
            tables.setdefault(table, []).extend(table_rows)
    if experiment.reference is not None:
        reference = experiment.reference(config)
        rows = reference["rows"] + rows
    frame = pd.DataFrame(rows)
    deviations = common.deviations(frame, experiment) if rows else []
    report_error = None
    try:
        figures, blocks = experiment.report(frame, tables, config) if rows else ({}, [])
    except Exception as err:  # the rows are kept: a figure's bug must not lose the run
        report_error = f"{type(err).__name__}: {err}"
        figures, blocks = {}, [Para("The figures could not be drawn: ", code(report_error))]
    results = {
        "experiment": name, "title": experiment.title, "source": experiment.source,
        "config": config, "frameworks": list(frameworks),
        "runs": {f: {k: v for k, v in run.items() if k not in ("rows", "tables")}
                 for f, run in runs.items()},
        "deviations": deviations, "largest_deviation": common.largest(deviations),
        "seconds": time.perf_counter() - started, "report_error": report_error,
        "environment": environment(),
        "command": command or f"run_experiment({name!r}, frameworks={list(frameworks)}, "
                              f"full={full}, seed={seed}, dtype={dtype!r})",
    }
    write_run(Path(out), experiment, results, frame, tables, figures, blocks)
    return results


def write_run(out: Path, experiment: common.Experiment, results: dict[str, Any],
              frame: pd.DataFrame, tables: dict[str, list], figures: dict[str, bytes],
              blocks: list) -> None:
    """Every file of the run directory, atomically; results.json last."""
    from .report import render

    for figure, data in figures.items():
        io.write_bytes_atomic(out / "plots" / f"{figure}.png", data)
    io.write_csv_atomic(out / "results.csv", frame.to_dict("records"))
    for table, rows in tables.items():
        io.write_csv_atomic(out / f"{table}.csv", rows)
    markdown, html = render(experiment, results, blocks, figures)
    io.write_text_atomic(out / "report.md", markdown)
    io.write_text_atomic(out / "report.html", html)
    io.write_json_atomic(out / "results.json", results)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
