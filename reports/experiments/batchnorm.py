"""002 §8.3: training accuracy with and without batch norm, across initial weight scales.

The book's experiment (002 describes it: "1000 training images", the figure of 16 panels; its
"16 epochs" is the number of weight scales): 16 weight scales from logspace(0, -4), each the std
of every Linear weight (normal(scale)); an MLP of 5 hidden layers of 100 ReLU units, with a
BatchNorm1d between each Linear and its ReLU or without; SGD lr 0.01, batch 100, 1000
training images, 20 epochs; the training accuracy after every epoch. Quick: 4 of the scales
(1, 0.046, 0.0022, 1e-4), 10 epochs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

import impls

from ..render.doc import Figure as FigureBlock
from . import common


def run(framework: str, config: dict[str, Any]) -> dict[str, Any]:
    backend = impls.load(framework)
    x, y, _, _ = common.load(config)
    classes = common.num_classes(config)
    rows, seconds = [], {}
    for scale in config["weight_scales"]:
        for batchnorm in (True, False):
            start = time.perf_counter()
            model = common.build_mlp(backend, x, classes, config, init=f"normal({scale!r})",
                                     hidden=tuple(config["hidden"]), batchnorm=batchnorm)
            opt = backend.build_optimizer("sgd", model, lr=config["lr"])
            for row in common.accuracy_curve(backend, model, opt, x, y, config,
                                             {"train_accuracy": (x, y)}):
                rows.append({"framework": framework, "weight_scale": scale,
                             "batchnorm": batchnorm, **row})
            seconds[f"{scale:.3g} {'bn' if batchnorm else 'plain'}"] = (
                time.perf_counter() - start)
    return {"rows": rows, "seconds": seconds}


def report(frame: pd.DataFrame, tables: dict, config: dict[str, Any]) -> tuple[dict, list]:
    scales = list(dict.fromkeys(frame["weight_scale"]))
    fig, axes = common.panels(len(scales), ncols=4, width=3.0, height=2.5)
    for ax, scale in zip(axes, scales):
        for batchnorm, style in ((True, "-"), (False, "--")):
            for framework in common.frameworks_of(frame):
                curve = frame[(frame["weight_scale"] == scale) & (frame["batchnorm"] == batchnorm)
                              & (frame["framework"] == framework)]
                common.line(ax, curve["epoch"], curve["train_accuracy"], framework,
                            label=f"{'BN' if batchnorm else 'no BN'} ({framework})",
                            linestyle=style)
        ax.set_title(f"weight std {scale:.3g}", fontsize=9)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("train accuracy", fontsize=8)
    axes[0].legend(fontsize=6)
    fig.suptitle("With batch norm (solid) and without (dashed)")
    final = frame[frame["epoch"] == frame["epoch"].max()]
    gain = (final[final["batchnorm"]].groupby("weight_scale")["train_accuracy"].mean()
            - final[~final["batchnorm"]].groupby("weight_scale")["train_accuracy"].mean())
    return {"batchnorm": common.png(fig)}, [FigureBlock(
        "batchnorm", "Training accuracy by weight scale",
        f"{len(config['hidden'])} hidden layers of 100 ReLU units, SGD lr {config['lr']}, batch "
        f"{config['batch_size']}, {config['n_train']} {config['dataset']} training images. "
        f"After {config['epochs']} epochs, batch norm's training accuracy minus the plain "
        f"network's (mean over the frameworks) ranges from {np.nanmin(gain.to_numpy()):+.2f} "
        f"to {np.nanmax(gain.to_numpy()):+.2f} across the scales.")]


SCALES = [float(s) for s in np.logspace(0, -4, num=16)]
EXPERIMENT = common.Experiment(
    name="batchnorm",
    title="Batch norm on and off across weight scales",
    source="002 §8.3 (测试 batch normalization) and its book's batch_norm_test",
    summary="train accuracy with/without batch norm, weight std from logspace(0, -4)",
    quick=dict(dataset="digits", n_train=1000, hidden=[100] * 5, batch_size=100, lr=0.01,
               epochs=10, weight_scales=SCALES[::5]),
    full=dict(dataset="fashion-mnist", n_train=1000, hidden=[100] * 5, batch_size=100,
              lr=0.01, epochs=20, weight_scales=SCALES),
    run=run, report=report, curve_keys=("weight_scale", "batchnorm"), step="epoch",
    values=("train_loss", "train_accuracy"))
