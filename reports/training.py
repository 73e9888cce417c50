"""One training run of one model in one framework, through the uniform backend API.

Framework-neutral: it only calls ``impls.load(framework)``'s ``build_model``,
``build_optimizer``, ``train_step`` and ``model.predict``, so the same loop, the same batches
(``impls.data.batches`` with the run's seed) and the same starting weights (drawn in NumPy from
the seed) serve every framework.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

import impls
from impls import data as datasets

from .environment import environment
from .runspec import TRAINING_DEFAULTS as DEFAULTS


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict:
    """Mean softmax cross-entropy and accuracy of ``model`` on (x, y), inference mode."""
    logits = np.asarray(model.predict(x, batch_size=batch_size), dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_p[np.arange(len(y)), y].mean())
    accuracy = float((logits.argmax(axis=1) == y).mean())
    return {"loss": loss, "accuracy": accuracy}


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: got {value!r}, expected an integer >= 1")
    return int(value)


@dataclass
class Session:
    """Everything one training run needs, built once: the backend, the model at its initial
    weights, its optimizer, the data (in the run's dtype) and the config that made them."""

    backend: ModuleType
    model: Any
    optimizer: Any
    x_train: np.ndarray  # (N, C, H, W)
    y_train: np.ndarray  # (N,)
    x_test: np.ndarray  # (M, C, H, W)
    y_test: np.ndarray  # (M,)
    mask_rng: np.random.Generator | None
    config: dict = field(default_factory=dict)


def setup(framework: str = "numpy", model: str = "simple_cnn",
          dataset: str = DEFAULTS["dataset"], *, data_dir: str | None = None,
          optimizer: str = DEFAULTS["optimizer"], lr: float = DEFAULTS["lr"],
          batch_size: int = DEFAULTS["batch_size"], seed: int = DEFAULTS["seed"],
          dtype: str = DEFAULTS["dtype"],
          shared_masks: bool = False, dataset_options: dict | None = None,
          model_options: dict | None = None, optimizer_options: dict | None = None) -> Session:
    """Load the data and build the model (initial weights drawn in NumPy from ``seed``) and
    its optimizer in ``framework``. Arguments as ``train``'s."""
    batch_size = _check_positive_int("batch_size", batch_size)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: got {seed!r}, expected an integer >= 0")
    backend = impls.load(framework)
    (x_train, y_train), (x_test, y_test) = datasets.load_dataset(
        dataset, data_dir, **(dataset_options or {}))
    _, num_classes = datasets.dataset_info(dataset, **(dataset_options or {}))
    net = backend.build_model(model, input_shape=tuple(x_train.shape[1:]),
                              num_classes=num_classes, seed=seed, dtype=dtype,
                              **(model_options or {}))
    opt = backend.build_optimizer(optimizer, net, lr=lr, **(optimizer_options or {}))
    config = dict(framework=framework, model=model, dataset=dataset, optimizer=optimizer,
                  lr=lr, batch_size=batch_size, seed=seed, dtype=dtype,
                  shared_masks=shared_masks, n_train=len(x_train), n_test=len(x_test),
                  dataset_options=dataset_options or {}, model_options=model_options or {},
                  optimizer_options=optimizer_options or {})
    return Session(backend, net, opt,
                   x_train.astype(dtype, copy=False), y_train,
                   x_test.astype(dtype, copy=False), y_test,
                   np.random.default_rng([seed, 1]) if shared_masks else None, config)


def train(framework: str = "numpy", model: str = "simple_cnn",
          dataset: str = DEFAULTS["dataset"], *, data_dir: str | None = None,
          epochs: int = DEFAULTS["epochs"], optimizer: str = DEFAULTS["optimizer"],
          lr: float = DEFAULTS["lr"], batch_size: int = DEFAULTS["batch_size"],
          seed: int = DEFAULTS["seed"], dtype: str = DEFAULTS["dtype"],
          shared_masks: bool = False, dataset_options: dict | None = None,
          model_options: dict | None = None, optimizer_options: dict | None = None,
          progress: bool = True, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train and evaluate; return the run as a dict (config, environment, one row per epoch,
    one row per step).

    Every epoch reports the mean training loss of its steps, train and test accuracy and
    loss (inference mode), and its wall time. ``shared_masks``: draw dropout masks in NumPy
    from the seed (identical across frameworks) instead of each framework's own RNG.
    ``on_epoch(result)`` is called after each epoch with the result so far (to save it,
    print it). Defaults: reports/runspec.py's TRAINING_DEFAULTS, the same as ``run``'s.
    Ctrl-C stops the run at once; the finished epochs are kept and ``interrupted`` is True.
    """
    epochs = _check_positive_int("epochs", epochs)
    session = setup(framework, model, dataset, data_dir=data_dir, optimizer=optimizer, lr=lr,
                    batch_size=batch_size, seed=seed, dtype=dtype, shared_masks=shared_masks,
                    dataset_options=dataset_options, model_options=model_options,
                    optimizer_options=optimizer_options)
    return fit(session, epochs, progress=progress, on_epoch=on_epoch)


def fit(session: Session, epochs: int = DEFAULTS["epochs"], *, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train ``session.model`` for ``epochs`` more epochs on the run's batches; see ``train``.

    Each step is timed on its own (``steps``: epoch, step, images, loss, seconds), the
    batches are ``impls.data.batches(..., seed=seed, epoch=e)``, the same in every framework.
    """
    epochs = _check_positive_int("epochs", epochs)
    config = session.config
    framework, model, seed = config["framework"], config["model"], config["seed"]
    result = {
        "config": {**config, "epochs": epochs},
        "environment": environment(framework),
        "epochs": [],
        "steps": [],
        "interrupted": False,
    }
    steps_per_epoch = math.ceil(len(session.x_train) / config["batch_size"])
    bar = _progress_bar(progress, steps_per_epoch)
    try:
        for epoch in range(1, epochs + 1):
            if bar is not None:
                bar.reset(total=steps_per_epoch)
                bar.set_description(f"{framework} {model} epoch {epoch}/{epochs}")
            start = time.perf_counter()
            losses = []
            for xb, yb in datasets.batches(session.x_train, session.y_train,
                                           config["batch_size"], seed=seed, epoch=epoch - 1):
                step_start = time.perf_counter()
                losses.append(session.backend.train_step(session.model, session.optimizer,
                                                         xb, yb, rng=session.mask_rng))
                result["steps"].append({"epoch": epoch, "step": len(result["steps"]) + 1,
                                        "images": len(xb), "loss": losses[-1],
                                        "seconds": time.perf_counter() - step_start})
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
            seconds = time.perf_counter() - start
            test = evaluate(session.model, session.x_test, session.y_test)
            train_eval = evaluate(session.model, session.x_train, session.y_train)
            row = {"epoch": epoch, "steps": len(losses),
                   "train_loss": float(np.mean(losses)),
                   "train_eval_loss": train_eval["loss"],
                   "train_accuracy": train_eval["accuracy"],
                   "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                   "seconds": seconds}
            result["epochs"].append(row)  # reported by on_epoch (the CLI prints it once)
            if on_epoch is not None:
                on_epoch(result)
    except KeyboardInterrupt:
        result["interrupted"] = True
    finally:
        if bar is not None:
            bar.close()
    return result


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress bar is a nicety; tqdm comes with the "report" extra
        return None
    return tqdm(total=total, leave=False, unit="step", dynamic_ncols=True)
