"""The weight-initialisation experiments of "Deep Learning from Scratch" (002's book).

1. Activation histograms: 1000 Gaussian inputs of 100 features through 5 layers of 100 units
   (no bias, as the book's ``np.dot(x, w)``), each layer's activations in 30 bins over (0, 1):
   sigmoid with weights of std 1 (activations pile up at 0 and 1), 0.01 (all near 0.5) and
   sqrt(1/n) ("Xavier" in 002: sqrt(1/n), i.e. LeCun normal), ReLU with 0.01, sqrt(1/n) and
   sqrt(2/n) (He). 002 lists the section ("观察每层的数值分布") struck out, unwritten; these are
   the book's settings. The inputs and weights are drawn once in NumPy from the seed; each
   framework's own linear and activation ops compute the layers.
2. Loss curves: the 5-layer MLP of 100 ReLU units trained by SGD lr 0.01, batch 128, with
   std 0.01, Xavier (sqrt(1/n)) and He (sqrt(2/n)) weights (the book: 2000 iterations, MNIST).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

import impls

from ..render.doc import Figure as FigureBlock
from ..render.doc import Para, code
from . import common

INITS = {"std 0.01": "normal(0.01)", "Xavier (sqrt(1/n))": "lecun_normal",
         "He (sqrt(2/n))": "he_normal"}
# (activation, the weights' name, std as a function of the fan-in n): the book's six panels
HISTOGRAMS = (("sigmoid", "std 1", lambda n: 1.0), ("sigmoid", "std 0.01", lambda n: 0.01),
              ("sigmoid", "Xavier", lambda n: math.sqrt(1.0 / n)),
              ("relu", "std 0.01", lambda n: 0.01),
              ("relu", "Xavier", lambda n: math.sqrt(1.0 / n)),
              ("relu", "He", lambda n: math.sqrt(2.0 / n)))
BINS = 30


def histogram_inputs(config: dict[str, Any]) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """x (N, D) and, per histogram panel, the layers' weights (out, in), drawn in NumPy."""
    rng = np.random.default_rng([config["seed"], 2])
    n, width, layers = config["hist_samples"], config["hist_units"], config["hist_layers"]
    x = rng.standard_normal((n, width))
    weights = [[std(width) * rng.standard_normal((width, width)) for _ in range(layers)]
               for _, _, std in HISTOGRAMS]
    return x.astype(config["dtype"]), [[w.astype(config["dtype"]) for w in ws]
                                       for ws in weights]


def histograms(backend: Any, framework: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    x, weights = histogram_inputs(config)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    rows = []
    for (activation, label, _), ws in zip(HISTOGRAMS, weights):
        a = x
        for layer, w in enumerate(ws, start=1):
            z, _ = backend.linear_forward(a, w, np.zeros(len(w), a.dtype))
            a, _ = getattr(backend, f"{activation}_forward")(z)
            a = np.asarray(a)
            counts, _ = np.histogram(a.ravel(), bins=edges)
            rows += [{"framework": framework, "activation": activation, "weights": label,
                      "layer": layer, "bin": i, "left": edges[i], "right": edges[i + 1],
                      "count": int(c), "mean": float(a.mean()), "std": float(a.std())}
                     for i, c in enumerate(counts)]
    return rows


def run(framework: str, config: dict[str, Any]) -> dict[str, Any]:
    backend = impls.load(framework)
    hist = histograms(backend, framework, config)
    x, y, _, _ = common.load(config)
    classes = common.num_classes(config)
    rows, seconds = [], {}
    for label in config["inits"]:
        init = INITS[label]
        model = common.build_mlp(backend, x, classes, config, init=init,
                                 hidden=tuple(config["hidden"]))
        opt = backend.build_optimizer("sgd", model, lr=config["lr"])
        start = time.perf_counter()
        batches = common.step_batches(x, y, config["batch_size"], config["seed"])
        for step in range(1, config["iterations"] + 1):
            _, xb, yb = next(batches)
            rows.append({"framework": framework, "init": label, "step": step,
                         "loss": backend.train_step(model, opt, xb, yb)})
        seconds[label] = time.perf_counter() - start
    return {"rows": rows, "tables": {"histograms": hist}, "seconds": seconds}


def _histogram_figure(hist: pd.DataFrame) -> bytes:
    frameworks = common.frameworks_of(hist)
    layers = sorted(set(hist["layer"]))
    fig, axes = common.panels(len(HISTOGRAMS) * len(layers), ncols=len(layers), width=2.3,
                              height=1.9)
    for p, (activation, label, _) in enumerate(HISTOGRAMS):
        panel = hist[(hist["activation"] == activation) & (hist["weights"] == label)]
        for j, layer in enumerate(layers):
            ax = axes[p * len(layers) + j]
            part = panel[panel["layer"] == layer]
            for framework in frameworks:
                bars = part[part["framework"] == framework]
                ax.stairs(bars["count"].to_numpy(), np.r_[bars["left"].to_numpy(), 1.0],
                          color=common.plots.color(framework), label=framework,
                          linewidth=common.plots.width(framework) / 2 + 0.3)
            ax.set_title(f"{activation}, {label}: layer {layer}", fontsize=8)
            ax.tick_params(labelsize=6)
            if p == 0 and j == 0:
                ax.legend(fontsize=6)
    return common.png(fig)


def _histogram_agreement(hist: pd.DataFrame) -> list:
    """A sentence: the largest count difference in any bin, the largest relative difference in
    a layer's activation std, across frameworks (against NumPy)."""
    frameworks = set(hist["framework"])
    if len(frameworks) < 2 or "numpy" not in frameworks:
        return []
    keys = ["activation", "weights", "layer", "bin"]
    base = hist[hist["framework"] == "numpy"].set_index(keys)
    worst_count, worst_std = 0, 0.0
    for framework in sorted(frameworks - {"numpy"}):
        other = hist[hist["framework"] == framework].set_index(keys)
        both = base.index.intersection(other.index)
        counts = (other.loc[both, "count"] - base.loc[both, "count"]).abs().to_numpy()
        stds = ((other.loc[both, "std"] - base.loc[both, "std"]).abs()
                / base.loc[both, "std"].abs()).to_numpy()
        worst_count = max(worst_count, int(counts.max(initial=0)))
        worst_std = max(worst_std, float(np.nan_to_num(stds, nan=0.0).max(initial=0.0)))
    return [Para("Histograms across frameworks: the largest difference in any bin's count is ",
                 code(str(worst_count)), " (of the layer's activations); the largest relative "
                 "difference in a layer's activation std is ", code(f"{worst_std:.3g}"), ".")]


def report(frame: pd.DataFrame, tables: dict, config: dict[str, Any]) -> tuple[dict, list]:
    figures, blocks = {}, []
    hist = pd.DataFrame(tables.get("histograms", []))
    if not hist.empty:
        figures["weight_init_histograms"] = _histogram_figure(hist)
        blocks += [FigureBlock(
            "weight_init_histograms", "Activation histograms",
            f"{config['hist_samples']} Gaussian inputs through {config['hist_layers']} layers "
            f"of {config['hist_units']} units; each layer's activations in {BINS} bins over "
            "(0, 1), the frameworks overlaid (histograms.csv)."),
            *_histogram_agreement(hist)]
    frameworks = common.frameworks_of(frame)
    labels = list(dict.fromkeys(frame["init"]))
    fig, axes = common.panels(len(labels) + 1, ncols=4, width=3.6, height=3.0)
    for i, label in enumerate(labels):
        first = frame[(frame["init"] == label) & (frame["framework"] == frameworks[0])]
        axes[0].plot(first["step"], common.smooth(first["loss"].to_numpy()), label=label,
                     color=common.CYCLE[i], linewidth=1.4)
        for framework in frameworks:
            curve = frame[(frame["init"] == label) & (frame["framework"] == framework)]
            common.line(axes[i + 1], curve["step"], common.smooth(curve["loss"].to_numpy()),
                        framework)
        axes[i + 1].set_title(label)
        axes[i + 1].legend(fontsize=7)
    axes[0].set_title(f"every init ({frameworks[0]})")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (smoothed, 11)")
        ax.set_ylim(0, 2.5)
    figures["weight_init_loss"] = common.png(fig)
    blocks += [FigureBlock("weight_init_loss", "Loss curves by initialisation",
                           f"{len(config['hidden']) + 1}-layer MLP of ReLU units, SGD lr "
                           f"{config['lr']}, batch {config['batch_size']}, on "
                           f"{config['dataset']}; smoothed over 11 iterations.")]
    return figures, blocks


EXPERIMENT = common.Experiment(
    name="weight_init",
    title="Weight initialisation: activation histograms and loss curves",
    source="002 §8 (观察每层的数值分布, struck out there) as its book runs it",
    summary="activation histograms of 5 sigmoid/ReLU layers; std 0.01 vs Xavier vs He on the MLP",
    quick=dict(dataset="digits", n_train=None, hidden=[100] * 4, batch_size=128, lr=0.01,
               iterations=300, hist_samples=1000, hist_units=100, hist_layers=5, inits=list(INITS)),
    full=dict(dataset="fashion-mnist", n_train=None, hidden=[100] * 4, batch_size=128,
              lr=0.01, iterations=2000, hist_samples=1000, hist_units=100, hist_layers=5,
              inits=list(INITS)),
    run=run, report=report, curve_keys=("init",), values=("loss",))
