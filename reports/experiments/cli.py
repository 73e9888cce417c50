"""The ``experiment`` subcommand's options and its handler (reports/__main__.py registers it).

Only the standard library, impls and the list of names are imported here, so that registering
the subcommand costs nothing and needs none of the report extra (pandas, matplotlib, Jinja2):
the experiment's modules are imported when it runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import impls

from ..rundir import DEFAULT_OUT
from ..runspec import UsageError, integer
from . import NAMES, get

# ---------------------------------------------------------------------------------------------
# the command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..runner import HelpFormatter, names_arg

    p = sub.add_parser(
        "experiment", help="re-run one of the tutorials' experiments in every framework",
        description="Re-run one of the tutorials' experiments (--list names them) in each "
                    "framework, each in its own process, from the same initial weights on the "
                    "same batches; write results.csv, results.json, plots/*.png and report.md/"
                    "report.html (the frameworks overlaid, and how far apart they are) into "
                    "--out. Quick sizes by default, the tutorial's with --full.",
        formatter_class=HelpFormatter)
    p.set_defaults(handler=command, parser=p)
    p.add_argument("name", nargs="?", metavar="NAME", help=f"one of {', '.join(NAMES)}")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--full", action="store_true",
                   help="the tutorial's sizes (default: quick sizes, a minute or so)")
    p.add_argument("--frameworks", type=names_arg(impls.BACKENDS), default=list(impls.BACKENDS),
                   help="comma-separated frameworks (default: all three)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output directory, new or empty (default: {DEFAULT_OUT}/experiments/"
                        "NAME-quick|full-<time>)")
    p.add_argument("--seed", type=integer(0), default=0,
                   help="seeds the initial weights, the batch order and the dropout masks")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="the models' dtype (the tutorials' NumPy is float64)")
    p.add_argument("--data-dir", default=None,
                   help="directory of the dataset's files (default: the dataset's own)")
    p.add_argument("--threads", type=integer(1), default=1,
                   help="compute threads of each framework's process")


def _claim(out: Path) -> Path:
    """``--out`` checked before anything runs: a new or empty directory that can be written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a directory that is not empty"
        raise UsageError("--out", f"got {str(out)!r}, which is {what}; expected a new or "
                                  "empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError("--out", f"got {str(out)!r}: cannot create it "
                                  f"({err.strerror or type(err).__name__})") from None
    return out


def _runner():
    try:
        from . import runner
    except ImportError as err:
        raise ImportError(f"python -m reports experiment needs the report extra (pip install "
                          f"'cnn-rosetta[report]'): {err}") from None
    return runner


def command(args: argparse.Namespace) -> int:
    run_experiment = _runner().run_experiment
    if args.list:
        for name in NAMES:
            experiment = get(name)
            print(f"{name:22s} {experiment.summary} ({experiment.source})")
        return 0
    if args.name is None or args.name not in NAMES:
        got = "nothing" if args.name is None else repr(args.name)
        raise UsageError("NAME", f"got {got}, expected one of {', '.join(NAMES)} (or --list)")
    out = _claim(args.out or DEFAULT_OUT / "experiments" / (
        f"{args.name}-{'full' if args.full else 'quick'}-{time.strftime('%Y%m%d-%H%M%S')}"))
    typed = " ".join(["python -m reports experiment", args.name, *(["--full"] * args.full),
                      "--frameworks", ",".join(args.frameworks), "--seed", str(args.seed),
                      "--dtype", args.dtype, "--threads", str(args.threads),
                      *(["--data-dir", str(args.data_dir)] if args.data_dir else []),
                      "--out", str(out)])
    results = run_experiment(args.name, out, full=args.full, frameworks=args.frameworks,
                             seed=args.seed, dtype=args.dtype, data_dir=args.data_dir,
                             threads=args.threads, command=typed)
    for framework, run in results["runs"].items():
        state = (f"{run['wall_seconds']:.1f} s" if run["status"] == "ok"
                 else f"{run['status']}: {run.get('error', '')}")
        print(f"{framework}: {state}")
    top = results["largest_deviation"]
    if top is not None:
        print(f"largest deviation from {top['base']}: {top['deviation']:.3g} "
              f"({top['framework']}, {top['value']}, {experiment_step(top)})")
    print(f"report: {out / 'report.md'}")
    return 0 if all(r["status"] != "failed" for r in results["runs"].values()) else 1


def experiment_step(row: dict[str, Any]) -> str:
    """Where a deviation row's largest deviation is, in words: "optimizer=adam, step 12"."""
    skip = {"value", "base", "scale", "deviation", "framework", "at"}
    keys = ", ".join(f"{k}={v}" for k, v in row.items() if k not in skip)
    return f"{keys}, at {row['at']}" if keys else f"at {row['at']}"
