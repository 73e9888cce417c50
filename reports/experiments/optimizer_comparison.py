"""002 §6.6: SGD, Momentum, AdaGrad, RMSProp and Adam training the same 5-layer MLP.

The tutorial's network: MultiLayerNet with hidden sizes [100, 100, 100, 100] (four hidden
layers and the output layer: five Linear layers), ReLU, He init (its default
weight_init_std='relu': sqrt(2/n)), batch 128, 2000 iterations on MNIST, each optimizer at
its class's default settings (SGD 0.01; Momentum 0.01, 0.9; AdaGrad 0.01 with 1e-7 added
outside the root; RMSprop 0.01, decay 0.99, 1e-7; Adam 0.001, 0.9, 0.999), the loss curves
smoothed. Its Adam adds 1e-7 to the uncorrected sqrt(v) (form "eps_hat"), as run here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

import impls
from reference.optimizers import TUTORIAL_OPTIMIZERS

from ..render.doc import Figure as FigureBlock
from ..render.doc import Para, code
from . import common


def _tutorial(name: str) -> dict[str, Any]:
    """002's class settings (reference.optimizers.TUTORIAL_OPTIMIZERS): form and hyperparameters."""
    return {k: v for k, v in TUTORIAL_OPTIMIZERS["002"][name].items() if k != "source"}


# label -> (optimizer, lr, build_optimizer's settings): 002's classes at their default lr
OPTIMIZERS = {
    "SGD": ("sgd", 0.01, _tutorial("sgd")),
    "Momentum": ("momentum", 0.01, _tutorial("momentum")),
    "AdaGrad": ("adagrad", 0.01, _tutorial("adagrad")),
    "RMSprop": ("rmsprop", 0.01, _tutorial("rmsprop")),
    "Adam": ("adam", 0.001, _tutorial("adam")),
}


def run(framework: str, config: dict[str, Any]) -> dict[str, Any]:
    """One loss row per iteration and optimizer (the loss of the batch before the update)."""
    backend = impls.load(framework)
    x, y, _, _ = common.load(config)
    classes = common.num_classes(config)
    rows, seconds = [], {}
    for label in config["optimizers"]:
        name, lr, hyper = OPTIMIZERS[label]
        model = common.build_mlp(backend, x, classes, config, init="he_normal",
                                 hidden=tuple(config["hidden"]))
        opt = backend.build_optimizer(name, model, lr=lr, **hyper)
        start = time.perf_counter()
        batches = common.step_batches(x, y, config["batch_size"], config["seed"])
        for step in range(1, config["iterations"] + 1):
            _, xb, yb = next(batches)
            loss = backend.train_step(model, opt, xb, yb)
            rows.append({"framework": framework, "optimizer": label, "step": step,
                         "loss": loss})
        seconds[label] = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds}


def report(frame: pd.DataFrame, tables: dict, config: dict[str, Any]) -> tuple[dict, list]:
    labels = list(dict.fromkeys(frame["optimizer"]))
    frameworks = common.frameworks_of(frame)
    fig, axes = common.panels(len(labels) + 1, ncols=3, width=4.4, height=3.3)
    top = max(1.0, min(3.0, float(np.nanmax(frame["loss"]))))
    first = frameworks[0]
    for i, label in enumerate(labels):  # the tutorial's figure: every optimizer, one framework
        curve = frame[(frame["optimizer"] == label) & (frame["framework"] == first)]
        axes[0].plot(curve["step"], common.smooth(curve["loss"].to_numpy()), label=label,
                     color=common.CYCLE[i % len(common.CYCLE)], linewidth=1.4)
    axes[0].set_title(f"every optimizer ({first})")
    axes[0].legend(fontsize=8)
    for ax, label in zip(axes[1:], labels):  # one optimizer, the frameworks overlaid
        for framework in frameworks:
            curve = frame[(frame["optimizer"] == label) & (frame["framework"] == framework)]
            common.line(ax, curve["step"], common.smooth(curve["loss"].to_numpy()), framework)
        ax.set_title(label)
        ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (smoothed, 11)")
        ax.set_ylim(0, top)
    fig.suptitle(f"{len(config['hidden']) + 1}-layer MLP on {config['dataset']}, batch "
                 f"{config['batch_size']}: training loss")
    figures = {"optimizer_comparison": common.png(fig)}
    settings = "; ".join(f"{k}: {OPTIMIZERS[k][0]} lr {OPTIMIZERS[k][1]}"
                         + "".join(f", {h} {v}" for h, v in OPTIMIZERS[k][2].items()
                                   if (h, v) != ("form", "textbook"))
                         for k in labels)
    blocks = [FigureBlock("optimizer_comparison", "Loss curves",
                          "Each optimizer's loss per iteration (the batch's loss before the "
                          "update), smoothed over 11 iterations: all of them in one framework, "
                          "then each with the frameworks overlaid."),
              Para("Settings (the tutorial's class defaults): ", code(settings), ".")]
    return figures, blocks


EXPERIMENT = common.Experiment(
    name="optimizer_comparison",
    title="Optimizers compared on a 5-layer MLP",
    source="002 §6.6 (opt 的对比)",
    summary="SGD, Momentum, AdaGrad, RMSprop, Adam on a 5-layer MLP of 100 units, batch 128",
    quick=dict(dataset="digits", n_train=None, hidden=[100] * 4, batch_size=128,
               iterations=300, optimizers=list(OPTIMIZERS)),
    full=dict(dataset="fashion-mnist", n_train=None, hidden=[100] * 4, batch_size=128,
              iterations=2000, optimizers=list(OPTIMIZERS)),
    run=run, report=report, curve_keys=("optimizer",), values=("loss",))
