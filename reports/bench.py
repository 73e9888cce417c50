"""The benchmark: ``python -m reports bench`` (see ``--help``).

A bench run measures speed, not learning: for every model at its tutorial's input size
(``cells.TUTORIAL_INPUTS``) and every framework, a step cell (reports/cells.py) times the
training step and inference on one synthetic batch, the step's peak memory, its FLOP rate and
the framework's GEMM rate; then the op benchmarks (reports/opbench.py), the loop reference
included. Cells run one at a time, each in its own process with the same thread count, through
the runner's machinery (reports/runner.py): the run directory, ``--resume``, failed and skipped
records and the report are those of ``python -m reports run``, and the newest bench run is
``<out>/latest-bench`` (``<out>/latest`` stays the training report's).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import impls
from reference.models import MODELS

from .cells import SPEC_DEFAULTS, TUTORIAL_INPUTS, cell_id, with_defaults
from .cells import record as make_record
from .opbench import OPS
from .rundir import DEFAULT_OUT, claim_run_dir, saved_run
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
from .runspec import integer

STEP = SPEC_DEFAULTS["step"]
# Defaults of the options that define the matrix; argparse's defaults are None, so that
# --resume can tell which of them were given (they are then refused: the saved matrix runs).
DEFAULTS: dict[str, Any] = {"models": list(MODELS), "batch_size": STEP["batch_size"],
                            "dtype": STEP["dtype"], "warmup": STEP["warmup"],
                            "repeats": STEP["repeats"], "gemm_size": STEP["gemm_size"],
                            "op_preset": "full"}
MATRIX_OPTIONS = ("frameworks", "models", "batch_size", "dtype", "threads", "warmup",
                  "repeats", "gemm_size", "op_preset", "no_ops", "ops", "run_id", "out")
LATEST = "latest-bench"


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark every model's training step and the ops in every framework",
        description="For every model at its tutorial's input size and every installed "
                    "framework: training-step latency (median, p90), throughput, inference "
                    "latency, the step's peak memory and GFLOP/s and the framework's GEMM "
                    "rate; then the op benchmarks with the loop reference. Cells run one at a "
                    "time, each in its own process with the same thread count. Writes a run "
                    "directory like `run` (docs/results.md), points <out>/latest-bench at it "
                    "and renders its report.",
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
                   help=f"timed steps, and timed inference calls (default: "
                        f"{DEFAULTS['repeats']})")
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


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """The bench run's matrix and settings from the parsed options (DEFAULTS fill the gaps)."""

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
        "threads": args.threads or os.cpu_count() or 1,
        "ops": not args.no_ops,
        "op_list": args.ops,
        "op_preset": pick("op_preset"),
    }


def plan(config: dict[str, Any], installed: list[str]
         ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(every cell's spec in run order, skipped records by cell id): the step cells by model,
    NumPy first, then the op cells."""
    specs: list[dict[str, Any]] = []
    skipped: dict[str, dict[str, Any]] = {}
    for model in config["models"]:
        input_shape, num_classes = TUTORIAL_INPUTS[model]
        for fw in ordered_frameworks(config):
            spec = with_defaults({
                "kind": "step", "framework": fw, "model": model,
                "input_shape": list(input_shape), "num_classes": num_classes,
                **{k: config[k] for k in ("batch_size", "dtype", "optimizer", "lr", "warmup",
                                          "repeats", "gemm_size", "threads")}})
            specs.append(spec)
            if fw not in installed:
                skipped[cell_id(spec)] = make_record(spec, "skipped", note=not_installed(fw))
    plan_op_cells(config, installed, specs, skipped)
    return specs, skipped


def bench_command(args: argparse.Namespace) -> int:
    """``python -m reports bench``: returns the exit status."""
    start = time.perf_counter()
    saved = saved_run(args, "bench", MATRIX_OPTIONS)
    config = build_config(args) if saved is None else saved["config"]
    specs, skipped = plan(config, impls.available())
    run_dir, created, continuing = claim_run_dir(args, config, saved)
    # one cell at a time: cells side by side would compete for the cores they are timing
    header = {"run_id": run_dir.name, "created": created, "config": config,
              "execution": {"workers": 1, "scheduler": None, "timeout": 0.0,
                            "parallel": False}}
    results = execute_run("bench", run_dir, header, specs, skipped, {},
                          resume=continuing, progress=not args.no_progress,
                          latest=LATEST, start=start)
    if results is None:
        return 130
    if not args.no_render:
        render_report(run_dir)
    return 0 if succeeded(results) else 1
