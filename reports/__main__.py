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
from .experiments import add_experiment_parser  # noqa: E402
from .io import write_csv_atomic, write_json_atomic  # noqa: E402
from .recipes import (  # noqa: E402
    Given,
    add_recipe_option,
    describe,
    train_settings,
    train_summary,
)
from .runner import DEFAULT_OUT, HelpFormatter, add_run_parser, dataset_option  # noqa: E402
from .runspec import (  # noqa: E402
    DTYPES,
    OPTIMIZERS,
    TRAINING_DEFAULTS,
    UsageError,
    check_dataset_options,
    hidden_sizes,
    init_name,
    integer,
    number,
)


def _add_train(sub: argparse._SubParsersAction) -> None:
    t = TRAINING_DEFAULTS
    p = sub.add_parser(
        "train", help="train one model in one framework and save per-epoch results",
        description="Train one model in one framework; print loss and accuracy per epoch and "
                    "write results.json and epochs.csv (atomically, after every epoch, so "
                    "Ctrl-C keeps the finished epochs). The training defaults are those of "
                    "`python -m reports run`.",
        formatter_class=HelpFormatter)
    p.set_defaults(handler=_run_train, parser=p)
    p.add_argument("--framework", choices=impls.BACKENDS, default="numpy", help="framework")
    add_recipe_option(p)
    # action=Given: the options a recipe's settings give way to (and that are recorded as its
    # overrides) are those typed, not the defaults (reports/recipes.py)
    p.add_argument("--model", choices=sorted(MODELS), default="simple_cnn", action=Given,
                   help="model (--recipe: the recipe's)")
    p.add_argument("--dataset", choices=DATASETS, default=t["dataset"], action=Given,
                   help="dataset (--recipe: the recipe's)")
    p.add_argument("--data-dir", default=None,
                   help="directory of the dataset's files (default: the dataset's own)")
    p.add_argument("--dataset-option", dest="dataset_options", type=dataset_option,
                   action="append", default=None, metavar="KEY=VALUE",
                   help="a dataset option, repeatable (JSON values): n_train=500, "
                        "n_test=200, for synthetic also input_shape=[1,8,8], num_classes=10")
    p.add_argument("--epochs", type=integer(1), default=t["epochs"], action=Given,
                   help="epochs (--recipe: the recipe's)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=t["optimizer"], action=Given,
                   help="optimizer (--recipe: the recipe's)")
    p.add_argument("--lr", type=number(0.0, low_open=True), default=t["lr"], action=Given,
                   help="learning rate (--recipe: the recipe's)")
    p.add_argument("--batch-size", type=integer(1), default=t["batch_size"], action=Given,
                   help="batch size (--recipe: the recipe's)")
    p.add_argument("--seed", type=integer(0), default=t["seed"],
                   help="seeds the initial weights, the batch order and shared dropout masks")
    p.add_argument("--dtype", choices=DTYPES, default=t["dtype"], help="the model's dtype")
    p.add_argument("--implementation", choices=("auto", "native", "textbook"), default="auto",
                   action=Given,
                   help="the framework's own optimizer, the textbook update written in the "
                        "framework, or native where it equals the textbook (auto)")
    p.add_argument("--momentum", type=number(0.0, high=1.0, high_open=True),
                   help="momentum/nesterov coefficient (default: 0.9)")
    p.add_argument("--alpha", type=number(0.0, high=1.0, high_open=True),
                   help="RMSProp decay of the squared average (default: 0.99)")
    p.add_argument("--beta1", type=number(0.0, high=1.0, high_open=True),
                   help="Adam's first-moment decay (default: 0.9)")
    p.add_argument("--beta2", type=number(0.0, high=1.0, high_open=True),
                   help="Adam's second-moment decay (default: 0.999)")
    p.add_argument("--eps", type=number(0.0, low_open=True),
                   help="optimizer epsilon (default: the optimizer's own)")
    p.add_argument("--weight-decay", type=number(0.0),
                   help="optimizer weight decay added to the gradient (default: 0)")
    p.add_argument("--l2", type=number(0.0),
                   help="the model's L2 term 0.5 * l2 * sum(w**2) in the loss (default: the "
                        "model's own)")
    p.add_argument("--init", type=init_name, default=t["init"], action=Given,
                   help="initialiser: he_normal, xavier_normal, xavier_uniform, normal(STD), "
                        "or 'model' for the tutorial's own (--recipe: the recipe's)")
    p.add_argument("--hidden", type=hidden_sizes,
                   help="mlp: hidden sizes, e.g. 100,100,100; three_layer_cnn: one size, "
                        "e.g. 500 (default: the model's own)")
    p.add_argument("--model-option", dest="model_options", type=dataset_option,
                   action="append", default=None, metavar="KEY=VALUE",
                   help="a model option, repeatable (JSON values): batchnorm=true for "
                        "three_layer_cnn, norm2=true for cifar_lrn_cnn, flatten_order=nhwc "
                        "(docs/models.md lists each model's options)")
    p.add_argument("--activation", choices=("relu", "sigmoid", "tanh"),
                   help="mlp activation (default: relu)")
    p.add_argument("--batchnorm", action="store_true", default=None, help="mlp: batch norm")
    p.add_argument("--dropout", type=number(0.0, high=1.0, high_open=True),
                   help="mlp: dropout probability (default: none)")
    p.add_argument("--shared-masks", action="store_true",
                   help="draw dropout masks in NumPy from the seed (same units in every "
                        "framework) instead of the framework's own RNG")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output directory, new or holding no results.json yet (default: "
                        f"{DEFAULT_OUT}/train/<run name>)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none either when stderr is not a terminal)")


def _train_out(out: Path) -> Path:
    """``--out`` checked before any training: a directory that can be written and holds no
    results (a run directory of `run`, or an earlier training, is never overwritten)."""
    if (out / "results.json").exists() or (out / "cells").is_dir():
        raise UsageError("--out", f"got {str(out)!r}, which already holds results (another "
                                  "run's); choose a new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = ("it is a file, not a directory" if out.exists() and not out.is_dir()
                  else err.strerror or type(err).__name__)
        raise UsageError("--out", f"got {str(out)!r}: cannot write there ({reason})") from None
    return out


def _run_train(args: argparse.Namespace) -> int:
    from .environment import keep_freed_memory
    from .training import train

    # the options typed, then the recipe's settings (reports/recipes.py), then the defaults
    settings, recipe_block = train_settings(args)
    dataset_options = dict(args.dataset_options or [])
    try:
        check_dataset_options(settings["dataset"], dataset_options)
    except (ValueError, TypeError) as err:
        raise UsageError("--dataset-option", str(err)) from None
    model_options = dict(settings["model_options"])
    if settings["init"] is not None:
        model_options["init"] = settings["init"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"recipe-{args.recipe}-" if args.recipe else ""
    out = _train_out(args.out or DEFAULT_OUT / "train" / (
        f"{name}{args.framework}-{settings['model']}-{settings['dataset']}-seed{args.seed}-"
        f"{stamp}"))
    keep_freed_memory()  # as in the runner's cells (reports/environment.py says why)
    if recipe_block is not None:
        print(describe(recipe_block), flush=True)

    def save(result: dict) -> None:
        if recipe_block is not None:
            result["config"]["recipe"] = recipe_block
        write_json_atomic(out / "results.json", result)
        # a recipe's name and stand-in label on every row: the CSV says what it measured too
        recipe_columns = {} if recipe_block is None else {
            "recipe": recipe_block["name"], "stand_in": recipe_block["label"] or ""}
        rows = [{**{k: v for k, v in result["config"].items() if not isinstance(v, dict)},
                 **recipe_columns, **row} for row in result["epochs"]]
        write_csv_atomic(out / "epochs.csv", rows)
        row = result["epochs"][-1]
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
              f"train accuracy {row['train_accuracy']:.4f}, "
              f"test accuracy {row['test_accuracy']:.4f}, {row['seconds']:.2f} s", flush=True)

    result = train(args.framework, settings["model"], settings["dataset"],
                   data_dir=args.data_dir, epochs=settings["epochs"],
                   optimizer=settings["optimizer"], lr=settings["lr"],
                   batch_size=settings["batch_size"], seed=args.seed, dtype=args.dtype,
                   shared_masks=args.shared_masks, dataset_options=dataset_options,
                   model_options=model_options,
                   optimizer_options=settings["optimizer_options"],
                   progress=not args.no_progress and sys.stderr.isatty(), on_epoch=save)
    if recipe_block is not None:
        result["config"]["recipe"] = recipe_block
    write_json_atomic(out / "results.json", result)  # the interrupted flag, after Ctrl-C
    if recipe_block is not None:
        print(train_summary(recipe_block, result))
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
    from .runfile import load_run, read_json_object

    # a run directory is input like any other: checked here, so the renderer gets a valid run
    load_run(args.run_dir, "render")
    for name in ("environment.json", "baseline.json"):
        if (args.run_dir / name).exists():
            read_json_object(args.run_dir / name, "render")
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
    p.add_argument("--parent-pid", type=int, default=None,
                   help="the runner's pid: once it is gone, remove --cleanup-dir and exit")
    p.add_argument("--cleanup-dir", type=Path, default=None,
                   help="the runner's temporary directory for this cell")
    p.set_defaults(handler=_run_cell)


def _run_cell(args: argparse.Namespace) -> int:
    from .cells import main as cell_main

    return cell_main(args.spec, args.out, args.threads, args.parent_pid, args.cleanup_dir)


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
    add_experiment_parser(sub)
    return parser


def _as_typed(parser: argparse.ArgumentParser | None, message: str) -> str:
    """A library error names its argument as the code does ("data_dir: got ..."): on the
    command line, name the option as the user typed it ("--data-dir: got ...")."""
    name, sep, rest = message.partition(": ")
    if parser is None or not sep or not name.isidentifier():
        return message
    options = {action.dest: action.option_strings[-1 if action.dest == "datasets" else 0]
               for action in parser._actions if action.option_strings}
    if name in options:
        return f"{options[name]}: {rest}"
    if name in ("n_train", "n_test", "input_shape", "num_classes", "noise", "test_size"):
        return f"--dataset-option {name}: {rest}"
    return message


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parser = getattr(args, "parser", None)
    try:
        return args.handler(args)
    except UsageError as err:  # as argparse reports a bad option: usage, then the message
        if parser is None:
            print(f"error: {err}", file=sys.stderr)
        else:
            parser.print_usage(sys.stderr)
            print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ImportError) as err:
        # bad input (a file, a saved run, an option the library refused): one line, status 2
        text = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {_as_typed(parser, text)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
