"""One training step (a compiled ``tf.function``) and the loss gradients, by tf.GradientTape.

loss = mean softmax cross-entropy + 0.5 * c * sum(w^2) for each conv and linear weight, c its
coefficient (the model's weight_decay or its layer's own: ``model.spec.l2_groups()``), both
in the graph, so the tape differentiates the L2 term
too. The sum of squares does not depend on the layout, so it is taken on the TensorFlow-layout
variables directly.

The step is compiled once per optimizer (an optimizer belongs to one model) and cached on it.
Its inputs are tensors, so a new batch of the same shape does not retrace, nor does a new
learning rate (a variable read inside the step); the masks are None or a dict of tensors, so
"with masks" and "without masks" are the only two traces, times two label kinds (integer
classes, probabilities) if both are used (``reduce_retracing`` also keeps one trace for every
batch size). The batch is checked before the step runs (_checks.training_batch), so a refused
batch leaves the model and the optimizer as they were.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from reference.models import dropout_masks

from .. import _checks
from . import ops
from .models import Model, compiled
from .optimizers import Optimizer

__all__ = ["train_step", "gradients"]


def _check_model(model: object) -> Model:
    if not isinstance(model, Model):
        raise TypeError(f"model: got {type(model).__name__}, expected a Model from build_model")
    return model


def _batch(model: Model, x: object, y: object) -> tuple[tf.Tensor, tf.Tensor]:
    """x (N, C, H, W) in the model's dtype and the labels, integer classes (N,) as int64 or
    probabilities (N, K) in the model's dtype, as tensors, after the shared check
    (_checks.training_batch: an empty batch, or one value per batch-norm channel, is refused
    here, before the compiled step, whose traced shapes may not show the batch size)."""
    x, kind, y = _checks.training_batch(x, y, model.spec, model.dtype)
    x = model.inputs_arg(x)
    return tf.constant(x), tf.constant(y, tf.int64 if kind == "integer" else model.dtype)


def _loss(model: Model, x: tf.Tensor, y: tf.Tensor, masks, update_stats: bool) -> tf.Tensor:
    """The training-mode loss (a scalar tensor in the model's dtype)."""
    logits = model(x, training=True, masks=masks, update_stats=update_stats)  # (N, K)
    if y.dtype.is_integer:  # classes (N,); else probabilities (N, K)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    else:
        per_example = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
    loss = tf.reduce_mean(per_example)
    params = model.params
    for coefficient, names in model.spec.l2_groups():
        loss = loss + ops._l2([params[key] for key in names], coefficient)
    return loss


def _step(model: Model, opt: Optimizer, x: tf.Tensor, y: tf.Tensor, masks) -> tf.Tensor:
    """Forward in training mode (running statistics updated), backward, one update."""
    params = model.params
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y, masks, update_stats=True)
    grads = tape.gradient(loss, params)  # name -> gradient, TensorFlow layouts
    opt.step(grads)
    return loss


def train_step(model: Model, opt: Optimizer, x: np.ndarray, y: np.ndarray,
               rng: np.random.Generator | None = None) -> float:
    """One update on the batch (x, y); returns the loss before the update.

    ``rng``: dropout masks = reference.models.dropout_masks(model.spec, len(x), rng), the same
    units every backend drops; None: the Dropout layers use ``tf.nn.dropout``. Batch norm uses
    the batch statistics and updates its running statistics.
    """
    _check_model(model)
    if not isinstance(opt, Optimizer):
        raise TypeError(f"opt: got {type(opt).__name__}, expected an Optimizer from "
                        "build_optimizer")
    params = model.params
    if opt.params.keys() != params.keys() or any(opt.params[k] is not v
                                                 for k, v in params.items()):
        raise ValueError("opt: got an optimizer built for another model, expected "
                         "build_optimizer(name, model) for this model")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: got {type(rng).__name__}, expected a np.random.Generator or None")
    x, y = _batch(model, x, y)
    masks = None if rng is None else dropout_masks(model.spec, len(x), rng)
    if opt.compiled_step is None:
        opt.compiled_step = compiled(_step, model, opt)
    return float(opt.compiled_step(x, y, model.tf_masks(masks, len(x))))


def gradients(model: Model, x: np.ndarray, y: np.ndarray,
              masks: dict[str, np.ndarray] | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """(loss, name -> gradient in the canonical layout) in training mode; no update.

    Eager. Batch norm normalises with the batch statistics but leaves its running statistics
    as they are; ``masks`` (canonical layout, like dropout_masks) or ``tf.nn.dropout``.
    """
    _check_model(model)
    x, y = _batch(model, x, y)
    tf_masks = model.tf_masks(masks, len(x))
    params = model.params
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y, tf_masks, update_stats=False)
    grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return float(loss), {key: model.canonical(key, g.numpy()) for key, g in grads.items()}
