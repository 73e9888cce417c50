"""What a run is: the shared training defaults, option checks, and a cell's identity.

``python -m reports train`` and ``python -m reports run`` take their training defaults from
``TRAINING_DEFAULTS`` (one place: plain ``train`` and ``run`` train alike). The argparse types
here check an option as it is parsed, so that a bad value stops the command before any work
with argparse's own "argument --lr: ..." message; ``check_config`` checks a whole matrix the
same way, for a new run and for a saved one (``--resume``, reports/runfile.py).

A cell's identity is its id (``cells.cell_id``: readable, the file name of its record) plus
``spec_hash``: a hash of everything in its spec, that is everything that changes its result.
A saved record is reused only when its hash is the planned cell's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
from collections.abc import Callable
from typing import Any

import impls
from impls import data as datasets
from reference.models import MODELS

# the training settings `train` and `run` share (run --full changes only dataset, models,
# seeds and batch size); He init and Adam lr 2e-3 reach ~95 % on digits in 3 epochs, where a
# tutorial's own tiny normal(0.01) init needs many more
TRAINING_DEFAULTS: dict[str, Any] = {
    "dataset": "digits", "epochs": 3, "optimizer": "adam", "lr": 2e-3, "batch_size": 32,
    "init": "he_normal", "dtype": "float32", "seed": 0,
}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
DTYPES = ("float32", "float64")
CELL_FRAMEWORKS = (*impls.BACKENDS, "reference")  # "reference": the loop reference's op cell
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class UsageError(ValueError):
    """A bad option value found after parsing: ``python -m reports`` prints it as argparse
    does ("usage: ...", "<prog>: error: argument --lr: ...") and exits with status 2."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")
        self.option = option


def plain_name(name: str, value: object) -> str:
    """A name that is safe as one path component (no '/', not '.' or '..')."""
    if not isinstance(value, str) or not _PLAIN_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{name}: got {value!r}, expected a plain name (letters, digits, "
                         "'_', '.', '-'; no '/')")
    return value


# ---------------------------------------------------------------------------------------------
# argparse types: each raises ArgumentTypeError, which argparse prints with the option's name


def number(low: float | None = None, *, low_open: bool = False,
           high: float | None = None, high_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float in the interval (NaN and infinities refused)."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    want = (("(" if low_open or low is None else "[") + f"{lo}, {hi}"
            + (")" if high_open or high is None else "]"))

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = (not math.isfinite(value)
               or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and (value >= high if high_open else value > high)))
        if bad:
            raise argparse.ArgumentTypeError(f"got {text!r}, expected a finite number in "
                                             f"{want}")
        return value
    parse.__name__ = "number"
    return parse


def integer(low: int) -> Callable[[str], int]:
    """argparse type: an integer >= low."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"got {text!r}, expected an integer >= {low}")
        return value
    parse.__name__ = "integer"
    return parse


def init_name(text: str) -> str:
    """argparse type: an initialiser name (or 'model': each tutorial's own)."""
    if text == "model":
        return text
    try:
        check_init(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected 'model', "
                                         f"{str(err).split('expected ', 1)[1]}") from None
    return text


def check_init(init: object) -> None:
    """ValueError unless ``init`` is an initialiser every backend knows."""
    impls.load("numpy").initialize(init, (1, 1))  # NumPy only; raises "init/name: got ..."


def hidden_sizes(text: str) -> tuple[int, ...]:
    """argparse type: mlp hidden sizes like 100,100,100."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"got {text!r}, expected comma-separated positive "
                                         "integers like 100,100,100")
    return tuple(int(p) for p in parts)


# ---------------------------------------------------------------------------------------------
# whole configs


def check_dataset_options(dataset: str, options: dict[str, Any]) -> None:
    """The loader's own checks of ``options`` (sizes, shapes), without reading any file;
    raises ValueError/TypeError naming the option."""
    datasets.dataset_info(dataset, **options)


def check_config(config: dict[str, Any], where: str = "config") -> None:
    """Check a `run` or `bench` matrix as the options are checked; raises ValueError naming
    ``where`` and the key. Used on saved runs (a results.json is input like any other)."""
    def fail(key: str, value: object, expected: str) -> None:
        raise ValueError(f"{where}: {key}: got {value!r}, expected {expected}")

    def names(key: str, allowed: tuple[str, ...]) -> None:
        value = config.get(key)
        if not isinstance(value, list) or not value or any(v not in allowed for v in value):
            fail(key, value, f"a non-empty list of {', '.join(allowed)}")

    def count(key: str, low: int) -> None:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            fail(key, value, f"an integer >= {low}")

    if not isinstance(config, dict):
        raise ValueError(f"{where}: got {type(config).__name__}, expected an object")
    mode = config.get("mode")
    if mode not in ("quick", "full", "bench", "recipe"):
        fail("mode", mode, "'quick', 'full', 'bench' or 'recipe'")
    names("frameworks", impls.BACKENDS)
    names("models", tuple(MODELS))
    if config.get("dtype") not in DTYPES:
        fail("dtype", config.get("dtype"), " or ".join(DTYPES))
    if config.get("optimizer") not in OPTIMIZERS:
        fail("optimizer", config.get("optimizer"), f"one of {', '.join(OPTIMIZERS)}")
    lr = config.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
            or lr <= 0:
        fail("lr", lr, "a finite number > 0")
    count("batch_size", 1)
    count("threads", 1)
    if not isinstance(config.get("ops"), bool):
        fail("ops", config.get("ops"), "true or false")
    if config.get("op_list") is not None:
        from .opbench import OPS

        names("op_list", OPS)
    if config.get("op_preset") not in ("quick", "full"):
        fail("op_preset", config.get("op_preset"), "'quick' or 'full'")
    if mode == "bench":
        count("warmup", 0)
        count("repeats", 1)
        count("gemm_size", 0)
        return
    names("datasets", datasets.DATASETS)
    count("epochs", 1)
    seeds = config.get("seeds")
    if not isinstance(seeds, list) or not seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        fail("seeds", seeds, "a non-empty list of integers >= 0")
    if config.get("init") is not None:
        try:
            check_init(config["init"])
        except ValueError:
            fail("init", config["init"], "an initialiser name or null")
    if config.get("data_dir") is not None and not isinstance(config["data_dir"], str):
        fail("data_dir", config["data_dir"], "a path or null")
    options = config.get("dataset_options")
    if not isinstance(options, dict):
        fail("dataset_options", options, "an object")
    for dataset in config["datasets"]:
        try:
            check_dataset_options(dataset, options)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where}: dataset_options: {err}") from None
    check_recipe_config(config, fail)


def check_recipe_config(config: dict[str, Any], fail: Callable[[str, object, str], None]
                        ) -> None:
    """A recipe run's own keys (reports/recipes.py): its block and its model and optimizer
    options; a run of another mode has none of them."""
    from reference.recipes import RECIPES

    block = config.get("recipe")
    if config["mode"] != "recipe":
        for key in ("recipe", "model_options", "optimizer_options"):
            if config.get(key):
                fail(key, config[key], f"nothing in a {config['mode']!r} run")
        return
    if not isinstance(block, dict) or block.get("name") not in RECIPES:
        fail("recipe", block, f"an object naming one of {', '.join(RECIPES)}")
    for key in ("stand_in", "comparable"):
        if not isinstance(block.get(key), bool):
            fail(f"recipe.{key}", block.get(key), "true or false")
    for key in ("recipe", "overrides"):
        if not isinstance(block.get(key), dict):
            fail(f"recipe.{key}", block.get(key), "an object")
    for key in ("model_options", "optimizer_options"):
        if not isinstance(config.get(key), dict):
            fail(key, config.get(key), "an object")


def spec_hash(spec: dict[str, Any]) -> str:
    """A hash of everything in a cell's spec (16 hex digits of SHA-256 over its canonical
    JSON): two cells with the same id but another lr, batch size, thread count... differ."""
    clean = {k: v for k, v in spec.items() if k not in ("weights_path", "spec_hash")}
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
