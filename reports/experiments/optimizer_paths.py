"""002 §6: the paths six optimizers take on f(x, y) = x²/20 + y² from (−7, 2) in 30 updates.

Each backend's own optimizer classes (build_optimizer over a plain dict {"x", "y"} of the
backend's float64 parameters: NumPy 0-d arrays, torch leaf tensors, TensorFlow variables) step
on the gradient the backend computes (NumPy: the analytic x/10, 2y; torch: autograd;
TensorFlow: GradientTape); the float reference (reference/optimizers.py, plain Python floats)
is the base every path is compared with. Settings: reference.optimizers.PATHS (002's SGD lr
0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3 in 002's eps-hat form; RMSProp and Nesterov added).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import impls
from reference import optimizers as R

from ..render.doc import Figure as FigureBlock
from ..render.doc import Para, code
from . import common

LABELS = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "adagrad": "AdaGrad",
          "rmsprop": "RMSProp", "adam": "Adam"}


def _parameters(framework: str, start: tuple[float, float]) -> dict[str, Any]:
    """{"x", "y"} as the backend's float64 parameters (what its build_optimizer takes)."""
    if framework == "torch":
        import torch

        return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                for k, v in zip("xy", start)}
    if framework == "tensorflow":
        import tensorflow as tf

        return {k: tf.Variable(v, dtype=tf.float64) for k, v in zip("xy", start)}
    return {k: np.array(v, dtype=np.float64) for k, v in zip("xy", start)}


def _gradients(framework: str, params: dict[str, Any]) -> dict[str, Any]:
    """df/dx, df/dy at the parameters, by the backend's own means."""
    if framework == "torch":
        import torch

        value = params["x"] ** 2 / 20.0 + params["y"] ** 2
        return dict(zip(params, torch.autograd.grad(value, list(params.values()))))
    if framework == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = params["x"] ** 2 / 20.0 + params["y"] ** 2
        return tape.gradient(value, params)
    gx, gy = R.grad_f(params["x"], params["y"])
    return {"x": np.asarray(gx), "y": np.asarray(gy)}


def _value(param: Any) -> float:
    if hasattr(param, "detach"):
        return float(param.detach().numpy())
    return float(np.asarray(param))


def _rows(framework: str, name: str, points: list[tuple[float, float]]) -> list[dict]:
    return [{"framework": framework, "optimizer": name, "step": i, "x": x, "y": y}
            for i, (x, y) in enumerate(points)]


def run(framework: str, config: dict[str, Any]) -> dict[str, Any]:
    """One row per optimizer and step (step 0 = the start) from the backend's optimizers."""
    backend = impls.load(framework)
    start, rows = tuple(config["start"]), []
    for name in config["optimizers"]:
        settings = dict(R.PATHS[name])
        params = _parameters(framework, start)
        opt = backend.build_optimizer(name, params, lr=settings.pop("lr"), **settings)
        points = [start]
        for _ in range(config["steps"]):
            opt.step(_gradients(framework, params))
            points.append((_value(params["x"]), _value(params["y"])))
        rows += _rows(framework, name, points)
    return {"rows": rows}


def reference(config: dict[str, Any]) -> dict[str, Any]:
    """The same paths from the float reference (plain Python floats, the textbook rules)."""
    rows = []
    for name in config["optimizers"]:
        settings = dict(R.PATHS[name])
        rows += _rows("reference", name, R.path(name, settings.pop("lr"), config["steps"],
                                                tuple(config["start"]), **settings))
    return {"rows": rows}


def report(frame: pd.DataFrame, tables: dict, config: dict[str, Any]) -> tuple[dict, list]:
    names = list(dict.fromkeys(frame["optimizer"]))
    fig, axes = common.panels(len(names), ncols=3, width=4.4, height=3.4)
    gx, gy = np.meshgrid(np.arange(-10, 10, 0.05), np.arange(-5, 5, 0.05))
    z = R.f(gx, gy)
    z = np.where(z > 7, 0, z)  # as 002's plot: the contours of the bowl's bottom only
    for ax, name in zip(axes, names):
        ax.contour(gx, gy, z, levels=12, linewidths=0.6, cmap="Greys")
        for framework in common.frameworks_of(frame):
            path = frame[(frame["optimizer"] == name) & (frame["framework"] == framework)]
            common.line(ax, path["x"], path["y"], framework, markevery=1)
        ax.plot(0, 0, "+", color="black", markersize=10)
        settings = ", ".join(f"{k} {v}" for k, v in R.PATHS[name].items())
        ax.set_title(f"{LABELS.get(name, name)} ({settings})", fontsize=8)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"f(x, y) = x²/20 + y² from {tuple(config['start'])}, {config['steps']} "
                 "updates (float64)")
    last = frame[frame["step"] == frame["step"].max()]
    ends = "; ".join(f"{LABELS.get(n, n)} ({g['x'].iloc[0]:.4g}, {g['y'].iloc[0]:.4g})"
                     for n, g in last[last["framework"] == "reference"].groupby(
                         "optimizer", sort=False))
    return {"optimizer_paths": common.png(fig)}, [
        FigureBlock("optimizer_paths", "Optimizer paths",
                    "Each optimizer's 30 updates from the start, the frameworks and the float "
                    "reference overlaid on the contours of f."),
        Para("Where each path ends (the reference): ", code(ends), ".")]


EXPERIMENT = common.Experiment(
    name="optimizer_paths",
    title="Optimizer paths on x²/20 + y²",
    source="002 §6 (SGD, Momentum, AdaGrad, Adam 的实现)",
    summary="six optimizers' 30 updates on f(x, y) = x^2/20 + y^2 from (-7, 2), float64",
    quick=dict(start=list(R.START), steps=R.STEPS, optimizers=list(R.PATHS)),
    full=dict(start=list(R.START), steps=R.STEPS, optimizers=list(R.PATHS)),
    run=run, report=report, curve_keys=("optimizer",), values=("x", "y"), base="reference",
    reference=reference)
