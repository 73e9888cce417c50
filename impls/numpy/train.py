"""One training step and the loss gradients, with the explicit backward of the NumPy layers.

loss = mean softmax cross-entropy + sum over the conv and linear weights of 0.5 * c * sum(w^2),
c each weight's coefficient (``model.spec.l2_groups()``: the model's weight_decay, or its
layer's own); the L2 term's gradient, c * w, is added to those weights' gradients after the
backward pass.

The batch is checked before anything runs (_checks.training_batch, the same check and message
in every backend: x, at least one example, more than one value per batch-norm channel, the
labels), so a refused batch leaves the model and the optimizer as they were.
"""

from __future__ import annotations

import numpy as np

from reference.models import dropout_masks

from .. import _checks
from . import ops
from .models import Model
from .optimizers import Optimizer

__all__ = ["train_step", "gradients"]


def _check_model(model: object) -> Model:
    if not isinstance(model, Model):
        raise TypeError(f"model: got {type(model).__name__}, expected a Model from build_model")
    return model


def _loss_and_grads(model: Model, x: np.ndarray, y: np.ndarray,
                    masks: dict[str, np.ndarray] | None) -> float:
    """Forward in training mode, loss, backward: fills model.grads, returns the loss."""
    logits = model.forward(x, training=True, masks=masks)  # (N, K)
    data_loss, dlogits = ops.softmax_cross_entropy(logits, y)
    model.backward(dlogits, input_grad=False)
    loss = data_loss  # a scalar of the model's dtype, as each term
    for coefficient, names in model.spec.l2_groups():
        l2_loss, l2_grads = ops.l2_regularization({key: model.params[key] for key in names},
                                                  coefficient)
        for key, g in l2_grads.items():
            model.grads[key] = model.grads[key] + g
        loss = loss + l2_loss
    return float(loss)


def train_step(model: Model, opt: Optimizer, x: np.ndarray, y: np.ndarray,
               rng: np.random.Generator | None = None) -> float:
    """One update on the batch (x, y); returns the loss before the update.

    ``rng``: dropout masks = reference.models.dropout_masks(model.spec, len(x), rng), the same
    units every backend drops; None: the Dropout layers draw from the model's own generator.
    Batch norm uses the batch statistics and updates its running statistics.
    """
    _check_model(model)
    if not isinstance(opt, Optimizer):
        raise TypeError(f"opt: got {type(opt).__name__}, expected an Optimizer from "
                        "build_optimizer")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: got {type(rng).__name__}, expected a np.random.Generator or None")
    x, _, y = _checks.training_batch(x, y, model.spec, model.dtype)
    masks = None if rng is None else dropout_masks(model.spec, len(x), rng)
    loss = _loss_and_grads(model, x, y, masks)
    opt.step(model.grads)
    return loss


def gradients(model: Model, x: np.ndarray, y: np.ndarray,
              masks: dict[str, np.ndarray] | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """(loss, name -> gradient) in training mode, for every trainable array; no update.

    The running statistics are restored afterwards, so the model is left as it was (except its
    dropout generator, which advances when no ``masks`` are given and the model has dropout).
    """
    _check_model(model)
    x, _, y = _checks.training_batch(x, y, model.spec, model.dtype)
    saved = {key: buffer.copy() for key, buffer in model.buffers.items()}
    try:
        loss = _loss_and_grads(model, x, y, masks)
    finally:
        for key, buffer in model.buffers.items():
            buffer[...] = saved[key]
    return loss, {key: g.copy() for key, g in model.grads.items()}
