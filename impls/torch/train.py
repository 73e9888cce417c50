"""One training step, and the loss gradients without a step, for a Model (eager PyTorch).

The loss is F.cross_entropy (mean softmax cross-entropy through log-softmax) plus the model's
L2 term, 0.5 * c * sum(w**2) for each conv and linear weight, c its coefficient (the model's
weight_decay or its layer's own: spec.l2_groups()).
Both run in training mode: BatchNorm normalises with the batch statistics, Dropout drops.
The batch is checked first (_checks.training_batch, shared by the three backends), so a
refused batch leaves the model and the optimizer as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from reference.models import dropout_masks

from .. import _checks
from .layers import Dropout
from .models import Model
from .optimizers import Optimizer

__all__ = ["train_step", "gradients"]


def _batch(model: Model, x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, C, H, W) and labels y (integer classes (N,) or probabilities (N, K)) as tensors.

    The shared check (_checks.training_batch) runs first: F.cross_entropy over an empty batch
    would return a NaN loss, and nn.BatchNorm1d refuses one example only once the layers
    before it have run.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model: got {type(model).__name__}, expected a Model (build_model)")
    x, kind, y = _checks.training_batch(x, y, model.spec, model.dtype)
    xt = model.as_tensor(x)  # (N, C, H, W)
    if kind == "integer":
        return xt, torch.from_numpy(y.astype(np.int64))  # (N,): F.cross_entropy wants int64
    return xt, torch.from_numpy(np.array(y, order="C"))  # (N, K)


def _loss(model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy + 0.5 * c * sum of the squares of each decayed weight."""
    loss = F.cross_entropy(model(x), y)
    params = dict(model.named_parameters())
    for coefficient, names in model.spec.l2_groups():
        l2 = sum(torch.sum(params[name] ** 2) for name in names)
        loss = loss + 0.5 * coefficient * l2
    return loss


@contextlib.contextmanager
def _masks(model: Model, masks: Mapping[str, np.ndarray] | None) -> Iterator[None]:
    """Inject one keep-mask per Dropout layer (by layer name) for the duration of the block."""
    if masks is None:
        yield
        return
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks: got {type(masks).__name__}, expected a dict layer name -> mask "
                        "(reference.models.dropout_masks)")
    layers = {name: m for name, m in model.named_children() if isinstance(m, Dropout)}
    for name in sorted(set(layers) ^ set(masks)):
        what = "missing" if name in layers else "unexpected"
        raise KeyError(f"masks: {what} {name!r}, expected one mask per Dropout layer "
                       f"({', '.join(layers) or 'none'})")
    for name, mask in masks.items():
        mask = np.asarray(mask)
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"masks[{name!r}]: got values other than 0 and 1, expected a 0/1 "
                             "or boolean keep-mask")
        layers[name].mask = torch.from_numpy(mask.astype(model.dtype))
    try:
        yield
    finally:
        for layer in layers.values():
            layer.mask = None


def train_step(model: Model, opt: Optimizer, x: np.ndarray, y: np.ndarray,
               rng: np.random.Generator | None = None) -> float:
    """One update of ``model`` by ``opt`` on the batch (x, y); returns the loss before it.

    With ``rng`` the dropout masks are reference.models.dropout_masks(model.spec, len(x), rng),
    the same units every backend drops; without it torch's own dropout.
    """
    xt, yt = _batch(model, x, y)
    if not isinstance(opt, Optimizer):
        raise TypeError(f"opt: got {type(opt).__name__}, expected an Optimizer "
                        "(build_optimizer)")
    optimized = {id(p) for group in opt.torch_optimizer.param_groups for p in group["params"]}
    if optimized != {id(p) for p in model.parameters()}:
        raise ValueError("opt: got an optimizer over other parameters, expected one built "
                         "for this model (build_optimizer(name, model))")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: got {type(rng).__name__}, expected a np.random.Generator or None")
    masks = None if rng is None else dropout_masks(model.spec, len(xt), rng)
    model.train()
    opt.zero_grad()
    with _masks(model, masks):
        loss = _loss(model, xt, yt)
    loss.backward()
    opt.step()
    return loss.item()


def gradients(model: Model, x: np.ndarray, y: np.ndarray,
              masks: Mapping[str, np.ndarray] | None = None
              ) -> tuple[float, dict[str, np.ndarray]]:
    """The training-mode loss and its gradient for every parameter (canonical names and layout).

    The model is left as it was: torch.autograd.grad leaves the parameters' .grad alone, and
    the running statistics the forward updates are put back (as is train/eval mode).
    """
    xt, yt = _batch(model, x, y)
    params = dict(model.named_parameters())
    saved = {name: b.clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        with _masks(model, masks):
            loss = _loss(model, xt, yt)
        grads = torch.autograd.grad(loss, list(params.values()))
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
        model.train(was_training)
    return loss.item(), {name: g.numpy().copy() for name, g in zip(params, grads, strict=True)}
