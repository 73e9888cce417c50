"""Command line: ``python -m reports train | run | bench | cell | render ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import impls  # noqa: E402
from impls.data import DATASETS  # noqa: E402
from reference.models import MODELS  # noqa: E402

from .bench import add_bench_parser  # noqa: E402
from .io import write_csv_atomic, write_json_atomic  # noqa: E402
from .runner import add_run_parser  # noqa: E402

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
DEFAULT_OUT = Path("reports") / "out"


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one model in one framework and save per-epoch results",
        description="Train one model in one framework; print loss and accuracy per epoch and "
                    "write results.json and epochs.csv (atomically, after every epoch, so "
                    "Ctrl-C keeps the finished epochs).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--framework", choices=impls.BACKENDS, default="numpy")
    p.add_argument("--model", choices=sorted(MODELS), default="simple_cnn")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data-dir", default=None,
                   help="directory of the dataset's files (default: the dataset's own)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the initial weights, the batch order and shared dropout masks")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--implementation", choices=("auto", "native", "textbook"), default="auto",
                   help="the framework's own optimizer, the textbook update written in the "
                        "framework, or native where it equals the textbook (auto)")
    p.add_argument("--momentum", type=float, help="momentum/nesterov coefficient (0.9)")
    p.add_argument("--alpha", type=float, help="RMSProp decay of the squared average (0.99)")
    p.add_argument("--beta1", type=float, help="Adam's first-moment decay (0.9)")
    p.add_argument("--beta2", type=float, help="Adam's second-moment decay (0.999)")
    p.add_argument("--eps", type=float, help="optimizer epsilon (its own default)")
    p.add_argument("--weight-decay", type=float,
                   help="optimizer weight decay added to the gradient (0)")
    p.add_argument("--l2", type=float,
                   help="the model's L2 term 0.5 * l2 * sum(w**2) in the loss (model default)")
    p.add_argument("--init", help="initialiser: he_normal, xavier_normal, xavier_uniform or "
                                  "normal(STD) (model default)")
    p.add_argument("--hidden", type=lambda s: tuple(int(v) for v in s.split(",")),
                   help="mlp: hidden sizes, e.g. 100,100,100")
    p.add_argument("--activation", choices=("relu", "sigmoid", "tanh"), help="mlp activation")
    p.add_argument("--batchnorm", action="store_true", default=None, help="mlp: batch norm")
    p.add_argument("--dropout", type=float, help="mlp: dropout probability")
    p.add_argument("--shared-masks", action="store_true",
                   help="draw dropout masks in NumPy from the seed (same units in every "
                        "framework) instead of the framework's own RNG")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output directory (default: {DEFAULT_OUT}/train/<run name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_train)


def _pick(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _run_train(args: argparse.Namespace) -> int:
    from .environment import keep_freed_memory
    from .training import train

    keep_freed_memory()  # as in the runner's cells (reports/environment.py says why)

    optimizer_options = _pick(args, ("momentum", "alpha", "beta1", "beta2", "eps",
                                     "weight_decay", "implementation"))
    model_options = _pick(args, ("hidden", "activation", "batchnorm", "dropout", "init"))
    if args.l2 is not None:
        model_options["weight_decay"] = args.l2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or DEFAULT_OUT / "train" / (
        f"{args.framework}-{args.model}-{args.dataset}-seed{args.seed}-{stamp}")

    def save(result: dict) -> None:
        write_json_atomic(out / "results.json", result)
        rows = [{**{k: v for k, v in result["config"].items() if not isinstance(v, dict)},
                 **row} for row in result["epochs"]]
        write_csv_atomic(out / "epochs.csv", rows)

    result = train(args.framework, args.model, args.dataset, data_dir=args.data_dir,
                   epochs=args.epochs, optimizer=args.optimizer, lr=args.lr,
                   batch_size=args.batch_size, seed=args.seed, dtype=args.dtype,
                   shared_masks=args.shared_masks, model_options=model_options,
                   optimizer_options=optimizer_options, progress=not args.no_progress,
                   on_epoch=save)
    save(result)
    for row in result["epochs"]:
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
              f"train accuracy {row['train_accuracy']:.4f}, "
              f"test accuracy {row['test_accuracy']:.4f}, {row['seconds']:.2f} s")
    print(f"results: {out / 'results.json'}")
    if result["interrupted"]:
        print(f"interrupted after {len(result['epochs'])} epoch(s); results so far kept",
              file=sys.stderr)
        return 130
    return 0


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="rebuild a run's report from its saved results",
        description="Rebuild report.md (with plots/*.png), the self-contained report.html and "
                    "the side-by-side code pages code/*.html of a run directory from its "
                    "results.json, environment.json and baseline.json alone (docs/results.md). "
                    "Runs and imports no backend.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="a run directory of `python -m reports run` or `bench`, e.g. "
                        "reports/out/latest or reports/out/latest-bench")
    p.set_defaults(handler=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from .render import render

    written = render(args.run_dir)
    print(f"report: {written['report.md']}")
    print(f"report: {written['report.html']}")
    print(f"code pages: {written['code/index.html']}")
    return 0


def _add_cell(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cell", help="measure one cell of a run in this process (the runner starts these)",
        description="Measure one cell (docs/results.md): read the spec, import only its "
                    "framework, set its threads, train or benchmark (step and op cells), and "
                    "write the cell record "
                    "to OUT atomically. Exit status 1 (and a 'failed' record) on an error.")
    p.add_argument("spec", type=Path, help="the cell spec, a JSON file")
    p.add_argument("out", type=Path, help="where to write the cell record (JSON)")
    p.add_argument("--threads", type=int, default=None,
                   help="compute threads for the framework and BLAS (default: the spec's "
                        "'threads', else the number of CPUs)")
    p.set_defaults(handler=_run_cell)


def _run_cell(args: argparse.Namespace) -> int:
    from .cells import main as cell_main

    return cell_main(args.spec, args.out, args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="cnn-rosetta: train and compare the same CNNs in NumPy, PyTorch and "
                    "TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    add_run_parser(sub)
    add_bench_parser(sub)
    _add_cell(sub)
    _add_render(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
