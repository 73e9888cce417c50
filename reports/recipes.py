"""``--recipe NAME`` for ``python -m reports run`` and ``train``: a tutorial's own settings.

A recipe (reference/recipes.py) supplies the defaults: model and its options, dataset, epochs,
batch size, optimizer with its form, lr, init, L2. Options given on the command line still
override them, and every override is recorded (``config["recipe"]["overrides"]``). The
tutorial's dataset must be there (``--data-dir``); without it the command stops with status 2
and says which files it needs, where to put them, and how to run a stand-in instead: with
``--dataset fashion-mnist`` or ``--dataset digits`` the recipe runs on that data (the model's
input shape and class count adapted, as every run adapts them) and every output says it is a
stand-in, not comparable with the tutorial's number.

The recipe block, written into the run's config (results.json) and the training's
results.json, is everything the report needs to put the tutorial's accuracy beside the
measured one (reports/render/recipe.py): the recipe as data, the dataset used, whether it is
a stand-in (and its label), the overrides, and whether the run is the tutorial's
(``comparable``).
"""

from __future__ import annotations

import argparse
from typing import Any

from impls import data as datasets
from reference.recipes import RECIPES, Recipe, recipe

from .runspec import UsageError, check_dataset_options

# how the report and the messages name each dataset
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST",
                  "digits": "scikit-learn's 8x8 digits", "cifar10": "CIFAR-10",
                  "signs": "SIGNS", "synthetic": "synthetic data"}
STAND_INS = ("fashion-mnist", "digits")  # real data that can be had here (README: Datasets)
# the files each tutorial dataset needs, in the directory given with --data-dir
REQUIRED_FILES = {
    "mnist": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"),
    "cifar10": ("cifar-10-batches-py/data_batch_1", "...", "cifar-10-batches-py/data_batch_5",
                "cifar-10-batches-py/test_batch"),
    "signs": ("train_signs.h5", "test_signs.h5"),
}
_FILE_NOTES = {  # how the files come, and where from (nothing is downloaded at run time)
    "mnist": "gzipped (.gz) or not, from an MNIST mirror",
    "cifar10": "the 'CIFAR-10 python version' unpacked, from "
               "https://www.cs.toronto.edu/~kriz/cifar.html; --data-dir may also name "
               "cifar-10-batches-py itself",
    "signs": "deeplearning.ai's SIGNS files, from the course 'Convolutional Neural Networks'",
}
# the settings a recipe gives and the run/train option that overrides each
SETTINGS = ("epochs", "batch_size", "optimizer", "lr", "init")


def title(dataset: str) -> str:
    return DATASET_TITLES.get(dataset, dataset)


def recipe_help() -> str:
    """``--recipe``'s help: every recipe, one line each."""
    lines = "; ".join(f"{name}: {r.summary()}" for name, r in RECIPES.items())
    return (f"train as a tutorial trains its network: its model and options, dataset, epochs, "
            f"batch, optimizer (and its form), lr, init and L2 become the defaults, which "
            f"explicit options still override (recorded). Without the tutorial's dataset in "
            f"--data-dir it stops and says which files to get; --dataset "
            f"{' or --dataset '.join(STAND_INS)} runs it on a stand-in, labelled as not "
            f"comparable. Recipes: {lines}")


def add_recipe_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=None, metavar="NAME",
                        help=recipe_help().replace("%", "%%"))  # argparse formats help with %


def stand_in_label(r: Recipe, dataset: str) -> str | None:
    """"Fashion-MNIST stand-in for MNIST: not comparable", or None on the tutorial's data."""
    if dataset == r.dataset:
        return None
    return f"{title(dataset)} stand-in for {title(r.dataset)}: not comparable"


def missing_data_message(r: Recipe, command: str, reason: str) -> str:
    files = REQUIRED_FILES.get(r.dataset)
    need = (f"the files {', '.join(files)} ({_FILE_NOTES[r.dataset]})" if files
            else f"the {title(r.dataset)} files")
    return (f"recipe {r.name} trains on {title(r.dataset)}, which cannot be read here ({reason}): "
            f"put {need} in one directory and give it with --data-dir DIR. Or run the recipe "
            f"on a stand-in, not comparable with the tutorial's accuracy: python -m reports "
            f"{command} --recipe {r.name} --dataset fashion-mnist (or --dataset digits)")


def check_data(r: Recipe, dataset: str, data_dir: str | None, options: dict[str, Any],
               command: str) -> None:
    """On the tutorial's own dataset, that its files are there and load; otherwise a
    UsageError (exit status 2) saying which files are needed and how to run a stand-in."""
    try:
        check_dataset_options(dataset, options)
    except (ValueError, TypeError) as err:
        raise UsageError("--dataset-option", f"{err} (dataset {dataset})") from None
    if dataset != r.dataset:
        return
    try:
        datasets.load_dataset(dataset, data_dir, **options)
    except (FileNotFoundError, ValueError, ImportError) as err:
        # the loader's first sentence says what is missing; the rest (how to get the files)
        # is said here for the recipe
        reason = " ".join(str(err).split()).split(". ")[0].rstrip(".")
        if data_dir is None:
            reason = "no --data-dir given"
        raise UsageError("--recipe", missing_data_message(r, command, reason)) from None


def _override(overrides: dict[str, Any], key: str, given: Any, default: Any) -> Any:
    """``given`` (recorded as an override when it differs from the recipe's) or ``default``."""
    if given is None:
        return default
    if given != default:
        overrides[key] = {"recipe": default, "used": given}
    return given


def block(r: Recipe, dataset: str, overrides: dict[str, Any],
          dataset_options: dict[str, Any]) -> dict[str, Any]:
    """The recipe block of a run's or a training's config (JSON-ready)."""
    overrides = dict(overrides)
    if dataset_options:
        overrides["dataset_options"] = {"recipe": {}, "used": dict(dataset_options)}
    label = stand_in_label(r, dataset)
    return {"name": r.name, "recipe": r.as_dict(), "dataset": dataset,
            "dataset_title": title(dataset), "recipe_dataset_title": title(r.dataset),
            "stand_in": label is not None, "label": label, "overrides": overrides,
            "comparable": label is None and not overrides}


def describe(b: dict[str, Any]) -> str:
    """One line saying what the run is, for the terminal."""
    r = b["recipe"]
    text = (f"recipe {b['name']}: {r['title']} ({r['tutorial']}), the tutorial's accuracy "
            f"{describe_reported(r['reported'])}")
    if b["label"]:
        text += f"; {b['label']}"
    if b["overrides"]:
        text += "; overrides: " + ", ".join(
            f"{k} {_value(v['used'])} (recipe: {_value(v['recipe'])})"
            for k, v in b["overrides"].items())
    if b["comparable"]:
        text += "; the tutorial's settings and data"
    return text


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def describe_reported(reported: dict[str, Any]) -> str:
    value = reported.get("value")
    if value is None:
        return "none reported"
    text = f"{100 * value:.4g} %"
    return (text if reported.get("relation") == "=" else f"at least {text}") + (
        f" ({reported.get('split')})")


# ---------------------------------------------------------------------------------------------
# run


def run_config(args: argparse.Namespace, build_config: Any) -> dict[str, Any]:
    """The config of ``python -m reports run --recipe NAME``: ``build_config`` (the runner's)
    on the options with the recipe's values where none was given, plus the recipe's model and
    optimizer options and the recipe block. Checks the data first (see ``check_data``)."""
    r = recipe(args.recipe)
    if args.full:
        raise UsageError("--full", "a recipe run trains the recipe's model with its settings; "
                                   "leave out --full")
    if args.models is not None and list(args.models) != [r.model]:
        raise UsageError("--models", f"got {','.join(args.models)}, but recipe {r.name} "
                                     f"trains {r.model}; leave out --models")
    chosen = list(dict.fromkeys(args.datasets or [r.dataset]))
    if len(chosen) != 1:
        raise UsageError("--dataset", f"got {','.join(chosen)}, expected one dataset for "
                                      f"recipe {r.name} (its own, {r.dataset}, or a stand-in)")
    dataset = chosen[0]
    options = dict(args.dataset_options or [])
    check_data(r, dataset, args.data_dir, options, "run")
    overrides: dict[str, Any] = {}
    values = {key: _override(overrides, key, getattr(args, key), getattr(r, key))
              for key in SETTINGS}
    if values["init"] == "model" and r.init is None:
        overrides.pop("init", None)
    filled = argparse.Namespace(**{**vars(args), **values, "models": [r.model],
                                   "datasets": [dataset]})
    if filled.init is None:
        filled.init = "model"  # the recipe's "the model's own", not the runner's default
    config = build_config(filled)
    model_options = dict(r.model_options)
    if r.weight_decay is not None:
        model_options["weight_decay"] = r.weight_decay
    same_optimizer = values["optimizer"] == r.optimizer
    config.update({
        "mode": "recipe",
        # a recipe run trains; op benchmarks only when asked for with --ops
        "ops": bool(args.ops) and not args.no_ops,
        "model_options": model_options,
        # the recipe's form and epsilon belong to its optimizer: another one gets its defaults
        "optimizer_options": dict(r.optimizer_options) if same_optimizer else {},
        "recipe": block(r, dataset, overrides, options),
    })
    return config


def measured_accuracies(results: dict[str, Any]) -> dict[str, float]:
    """The final test accuracy of each framework's train cell (seed order, first seed)."""
    final: dict[str, tuple[int, float]] = {}
    for row in results.get("rows", []):
        if row.get("kind") == "train" and row.get("metric") == "test_accuracy":
            fw, epoch = row.get("framework"), row.get("epoch") or 0
            if fw not in final or epoch >= final[fw][0]:
                final[fw] = (epoch, row.get("value"))
    return {fw: value for fw, (_, value) in final.items()}


def run_summary(results: dict[str, Any]) -> str | None:
    """The line printed after a recipe run: the tutorial's accuracy beside the measured."""
    b = (results.get("config") or {}).get("recipe")
    if not b:
        return None
    measured = measured_accuracies(results)
    got = ", ".join(f"{fw} {value:.4f}" for fw, value in measured.items()) or "none"
    return _summary(b, got)


# ---------------------------------------------------------------------------------------------
# train


class Given(argparse.Action):
    """Stores an option's value as the default action does, and notes that it was typed
    (``namespace.given``): ``train``'s settings have non-None defaults, and a recipe gives way
    only to the options typed."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def train_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``python -m reports train``'s settings: ``{"model", "dataset", "epochs", "batch_size",
    "optimizer", "lr", "init", "model_options", "optimizer_options"}`` from the options and,
    with ``args.recipe``, the recipe for every option not typed (``Given``); and the recipe
    block (or None). ``init`` None means the model's own."""
    given = getattr(args, "given", set())
    model_options = dict(getattr(args, "model_options", None) or [])
    model_options.update({k: getattr(args, k) for k in ("hidden", "activation", "batchnorm",
                                                         "dropout")
                          if getattr(args, k) is not None})
    model = args.model if args.recipe is None or "model" in given else recipe(args.recipe).model
    hidden = model_options.get("hidden")
    if model != "mlp" and isinstance(hidden, tuple):  # three_layer_cnn: one hidden layer
        if len(hidden) != 1:
            raise UsageError("--hidden", f"got {','.join(map(str, hidden))}, but {model} has "
                                         "one hidden layer: give one size")
        model_options["hidden"] = hidden[0]
    if args.l2 is not None:
        model_options["weight_decay"] = args.l2
    optimizer_options = {k: getattr(args, k) for k in (
        "momentum", "alpha", "beta1", "beta2", "eps", "weight_decay")
        if getattr(args, k) is not None}
    if "implementation" in given or args.recipe is None:
        optimizer_options["implementation"] = args.implementation
    if args.recipe is None:
        settings = {k: getattr(args, k) for k in ("model", "dataset", *SETTINGS)}
        settings["init"] = None if settings["init"] == "model" else settings["init"]
        return {**settings, "model_options": model_options,
                "optimizer_options": optimizer_options}, None

    r = recipe(args.recipe)
    if "model" in given and args.model != r.model:
        raise UsageError("--model", f"got {args.model}, but recipe {r.name} trains {r.model}; "
                                    "leave out --model")
    dataset = args.dataset if "dataset" in given else r.dataset
    options = dict(args.dataset_options or [])
    check_data(r, dataset, args.data_dir, options, "train")
    overrides: dict[str, Any] = {}
    settings = {key: _override(overrides, key, getattr(args, key) if key in given else None,
                               getattr(r, key)) for key in SETTINGS}
    if settings["init"] == "model":
        if r.init is None:
            overrides.pop("init", None)
        settings["init"] = None
    recipe_model = dict(r.model_options)
    if r.weight_decay is not None:
        recipe_model["weight_decay"] = r.weight_decay
    for key, value in model_options.items():
        _override(overrides, f"model_options.{key}", value, recipe_model.get(key))
    recipe_optimizer = dict(r.optimizer_options) if settings["optimizer"] == r.optimizer else {}
    for key, value in optimizer_options.items():
        _override(overrides, f"optimizer_options.{key}", value, recipe_optimizer.get(key))
    b = block(r, dataset, overrides, options)
    return {**settings, "model": r.model, "dataset": dataset,
            "model_options": {**recipe_model, **model_options},
            "optimizer_options": {**recipe_optimizer, **optimizer_options}}, b


def _summary(b: dict[str, Any], got: str) -> str:
    """The recipe line after a run or a training: the tutorial's accuracy beside ``got``."""
    text = (f"recipe {b['name']}: the tutorial's test accuracy "
            f"{describe_reported(b['recipe']['reported'])}; measured on {b['dataset_title']}: "
            f"{got}")
    if b["label"]:
        text += f" ({b['label']})"
    elif not b["comparable"]:
        text += " (not the tutorial's settings: see the overrides)"
    return text


def train_summary(b: dict[str, Any], result: dict[str, Any]) -> str:
    """The line printed after ``train --recipe``."""
    epochs = result.get("epochs") or []
    got = f"{epochs[-1]['test_accuracy']:.4f}" if epochs else "none (no epoch finished)"
    return _summary(b, got)
