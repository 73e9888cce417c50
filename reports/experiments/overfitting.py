"""002 ch. 7: overfitting 300 training images, and weight decay and dropout against it.

The tutorial's settings (its weight-decay script): the first 300 training images, an MLP of
6 hidden layers of 100 ReLU units (He init, MultiLayerNet's default), SGD lr 0.01, batch 100,
201 evaluations (the initial weights and 200 epochs), without and with weight decay 0.1 (the
L2 term 0.5·λ·Σw² over the Linear weights, as its loss); its dropout run (shown, its script not)
uses the book's ratio 0.2. Train and test accuracy after every epoch. Quick: 100 epochs, on digits.

Its Dropout scales at test time (x·(1 − p)); the backends' Dropout is inverted (x/(1 − p) at
training time): the same expected activations, and every framework drops the same units
(masks drawn in NumPy from the seed, train_step's rng).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

import impls

from ..render.doc import Figure as FigureBlock
from . import common

VARIANTS = ("plain", "weight decay", "dropout")


def run(framework: str, config: dict[str, Any]) -> dict[str, Any]:
    backend = impls.load(framework)
    x, y, xt, yt = common.load(config)
    classes = common.num_classes(config)
    rows, seconds = [], {}
    for variant in config["variants"]:
        start = time.perf_counter()
        options = {"dropout": config["dropout"]} if variant == "dropout" else {}
        decay = config["weight_decay"] if variant == "weight decay" else 0.0
        model = common.build_mlp(backend, x, classes, config, init="he_normal",
                                 weight_decay=decay, hidden=tuple(config["hidden"]), **options)
        opt = backend.build_optimizer("sgd", model, lr=config["lr"])
        curve = common.accuracy_curve(backend, model, opt, x, y, config,
                                      {"train_accuracy": (x, y), "test_accuracy": (xt, yt)},
                                      dropout=variant == "dropout")
        rows += [{"framework": framework, "variant": variant, **row} for row in curve]
        seconds[variant] = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds}


def report(frame: pd.DataFrame, tables: dict, config: dict[str, Any]) -> tuple[dict, list]:
    variants = list(dict.fromkeys(frame["variant"]))
    fig, axes = common.panels(len(variants), ncols=3, width=4.2, height=3.3)
    for ax, variant in zip(axes, variants):
        for framework in common.frameworks_of(frame):
            curve = frame[(frame["variant"] == variant) & (frame["framework"] == framework)]
            common.line(ax, curve["epoch"], curve["train_accuracy"], framework,
                        label=f"train ({framework})")
            common.line(ax, curve["epoch"], curve["test_accuracy"], framework,
                        label=f"test ({framework})", linestyle="--")
        title = {"weight decay": f"weight decay {config['weight_decay']}",
                 "dropout": f"dropout {config['dropout']}"}.get(variant, "no regularisation")
        ax.set_title(title)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, loc="lower right")
    last = frame[frame["epoch"] == frame["epoch"].max()]
    gaps = ", ".join(
        f"{v}: train {g['train_accuracy'].mean():.3f}, test {g['test_accuracy'].mean():.3f}"
        for v, g in last.groupby("variant", sort=False))
    return {"overfitting": common.png(fig)}, [FigureBlock(
        "overfitting", "Train (solid) and test (dashed) accuracy",
        f"{config['n_train']} {config['dataset']} training images, {len(config['hidden'])} "
        f"hidden layers of 100 ReLU units, SGD lr {config['lr']}, batch {config['batch_size']};"
        f" after {config['epochs']} epochs (mean over the frameworks): {gaps}.")]


EXPERIMENT = common.Experiment(
    name="overfitting",
    title="Overfitting 300 images: weight decay and dropout",
    source="002 ch. 7 (解决过拟合的方法: DropOut, 权值衰减)",
    summary="300 images, 6x100 MLP, SGD 0.01: plain, weight decay 0.1, dropout 0.2",
    quick=dict(dataset="digits", n_train=300, hidden=[100] * 6, batch_size=100, lr=0.01,
               epochs=100, weight_decay=0.1, dropout=0.2, variants=list(VARIANTS)),
    full=dict(dataset="fashion-mnist", n_train=300, hidden=[100] * 6, batch_size=100,
              lr=0.01, epochs=200, weight_decay=0.1, dropout=0.2, variants=list(VARIANTS)),
    run=run, report=report, curve_keys=("variant",), step="epoch",
    values=("train_loss", "train_accuracy", "test_accuracy"))
