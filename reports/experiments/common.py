"""What every experiment shares: its description, MLP training curves on the same batches,
cross-framework deviations, smoothing and the figures' style.

An experiment is a module of this package with an ``EXPERIMENT = Experiment(...)``: a name, a
title, the tutorial section it re-runs, two configs (``quick``, the default, and ``full``, the
tutorial's sizes), ``run(framework, config) -> {"rows": [...], ...}`` (one framework, in the
process it is called in: rows, and optional extra tables) and ``report(frame, tables,
config) -> (figures, blocks)``. The driver
(runner.py) runs ``run`` once per framework, each in its own process, and writes the run dir.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from impls import data as datasets

from .. import plots


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str  # the tutorial section it re-runs
    summary: str  # one line, for --list
    quick: dict[str, Any]
    full: dict[str, Any]
    run: Callable[[str, dict[str, Any]], dict[str, Any]]
    # (rows, extra tables, config) -> ({figure name: PNG bytes}, report blocks)
    report: Callable[[pd.DataFrame, dict[str, list], dict[str, Any]],
                     tuple[dict[str, bytes], list]]
    # the columns that name one curve (besides framework), its x axis and its values: the
    # deviation table compares each curve across frameworks, step by step
    curve_keys: tuple[str, ...] = ()
    step: str = "step"
    values: tuple[str, ...] = ()
    base: str = "numpy"  # the curve the others are measured against
    # config -> {"rows": [...]} of the float reference (framework "reference"), the base
    reference: Callable[[dict[str, Any]], dict[str, Any]] | None = None


# ---------------------------------------------------------------------------------------------
# data and training


def load(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of the config's dataset in the config's dtype, the
    training set cut to its first ``n_train`` images when the config says so."""
    options = {k: config[k] for k in ("n_train", "n_test") if config.get(k) is not None}
    (x, y), (xt, yt) = datasets.load_dataset(config["dataset"], config.get("data_dir"),
                                             **options)
    dtype = config["dtype"]
    return x.astype(dtype), y, xt.astype(dtype), yt


def step_batches(x: np.ndarray, y: np.ndarray, batch_size: int,
                 seed: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(epoch, xb, yb) forever: impls.data.batches epoch after epoch, the same order in every
    framework (the tutorials draw each batch with replacement, np.random.choice; a seeded
    shuffle per epoch is what every framework can be given alike)."""
    epoch = 0
    while True:
        for xb, yb in datasets.batches(x, y, batch_size, seed=seed, epoch=epoch):
            yield epoch, xb, yb
        epoch += 1


def build_mlp(backend: ModuleType, x: np.ndarray, num_classes: int, config: dict[str, Any],
              *, init: str, weight_decay: float = 0.0, **options: Any) -> Any:
    """The mlp of reference/models.py over x's image shape, its weights drawn in NumPy from the
    config's seed (reference.models.initial_weights: the same numbers in every framework)."""
    return backend.build_model("mlp", input_shape=tuple(x.shape[1:]), num_classes=num_classes,
                               seed=config["seed"], dtype=config["dtype"], init=init,
                               weight_decay=weight_decay, **options)


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Inference-mode accuracy (running statistics, no dropout)."""
    logits = np.asarray(model.predict(x, batch_size=1000))
    return float((logits.argmax(axis=1) == y).mean())


def mask_rng(config: dict[str, Any]) -> np.random.Generator:
    """The generator train_step draws dropout masks from (reference.models.dropout_masks): the
    same seed in every framework, so every framework drops the same units."""
    return np.random.default_rng([config["seed"], 1])


def num_classes(config: dict[str, Any]) -> int:
    return datasets.dataset_info(config["dataset"]).num_classes


def accuracy_curve(backend: ModuleType, model: Any, opt: Any, x: np.ndarray, y: np.ndarray,
                   config: dict[str, Any], evaluate: dict[str, tuple[np.ndarray, np.ndarray]],
                   dropout: bool = False) -> list[dict[str, Any]]:
    """Train for config["epochs"] epochs of config["batch_size"]; one row per epoch (epoch 0:
    the initial weights) with the epoch's mean training loss (of its batches, before each
    update; None at epoch 0) and each of ``evaluate``'s accuracies ({"train_accuracy": (x, y)})."""
    rng = mask_rng(config) if dropout else None
    rows = [{"epoch": 0, "train_loss": None,
             **{k: accuracy(model, *xy) for k, xy in evaluate.items()}}]
    for epoch in range(config["epochs"]):
        losses = [backend.train_step(model, opt, xb, yb, rng=rng)
                  for xb, yb in datasets.batches(x, y, config["batch_size"],
                                                 seed=config["seed"], epoch=epoch)]
        rows.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                     **{k: accuracy(model, *xy) for k, xy in evaluate.items()}})
    return rows


# ---------------------------------------------------------------------------------------------
# deviations between frameworks


def deviations(frame: pd.DataFrame, experiment: Experiment) -> list[dict[str, Any]]:
    """Per curve and value: the largest deviation of any framework from the base curve,
    relative to the base curve's largest magnitude (near-zero points make an element-wise
    relative error meaningless, see design.md), and the step and framework where it is.

    A row per (curve, value); ``deviation`` is None when only the base (or no base) ran.
    """
    rows: list[dict[str, Any]] = []
    if frame.empty or experiment.base not in set(frame["framework"]):
        return rows
    keys = list(experiment.curve_keys)
    groups = frame.groupby(keys, sort=False) if keys else [((), frame)]
    for key, curve in groups:
        key = key if isinstance(key, tuple) else (key,)
        base = curve[curve["framework"] == experiment.base].set_index(experiment.step)
        for value in experiment.values:
            scale = float(np.nanmax(np.abs(base[value].to_numpy(float)), initial=0.0))
            best: dict[str, Any] = {"deviation": None, "framework": None, "at": None}
            for framework, other in curve.groupby("framework", sort=False):
                if framework == experiment.base:
                    continue
                other = other.set_index(experiment.step)[value]
                common = base.index.intersection(other.index)
                diff = np.abs(other.loc[common].to_numpy(float)
                              - base.loc[common, value].to_numpy(float))
                if not len(diff):
                    continue
                rel = diff / scale if scale > 0 else diff
                # NaN in both (no value at that step, or both diverged): agreement; NaN in
                # one framework only: as far apart as can be
                both = (np.isnan(other.loc[common].to_numpy(float))
                        & np.isnan(base.loc[common, value].to_numpy(float)))
                rel = np.where(both, 0.0, np.where(np.isnan(rel), np.inf, rel))
                i = int(np.argmax(rel))
                if best["deviation"] is None or rel[i] > best["deviation"]:
                    best = {"deviation": float(rel[i]), "framework": framework,
                            "at": common[i].item() if hasattr(common[i], "item") else common[i]}
            rows.append({**dict(zip(keys, key)), "value": value, "base": experiment.base,
                         "scale": scale, **best})
    return rows


def largest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of ``deviations`` with the largest deviation."""
    known = [r for r in rows if r["deviation"] is not None]
    return max(known, key=lambda r: r["deviation"]) if known else None


# ---------------------------------------------------------------------------------------------
# curves and figures


def smooth(values: np.ndarray, window: int = 11) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the ends): the tutorial smooths its
    loss curves before plotting (its smooth_curve, a Kaiser window of 11); a plain moving
    average has the same width and keeps each framework's curve comparable point by point."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 3:
        return values
    window = max(1, min(window, len(values)))
    half = window // 2
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    stacks = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.nanmean(stacks, axis=1)


# colours for what is not a framework (optimizers, initialisers): matplotlib's tab10 without
# the framework colours' near twins
CYCLE = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def panels(n: int, ncols: int = 3, width: float = 4.2, height: float = 3.2
           ) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def png(fig: Figure) -> bytes:
    """PNG bytes without date metadata (as reports/plots.py: same rows, same bytes)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def line(ax: Any, x: Any, y: Any, framework: str, label: str | None = None,
         linestyle: str = "-", markevery: int | None = None) -> None:
    """One framework's curve in the report's style (its colour, marker and width: frameworks
    that agree draw on top of each other, the widest first)."""
    every = markevery or max(1, len(x) // 10)
    ax.plot(x, y, linestyle=linestyle, color=plots.color(framework),
            marker=plots.marker(framework), markevery=every, markersize=4,
            linewidth=plots.width(framework) / 2 + 0.3,
            label=label if label is not None else framework, alpha=0.9)


def frameworks_of(frame: pd.DataFrame) -> list[str]:
    return plots.ordered(frame["framework"])
