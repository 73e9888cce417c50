"""The networks of reference/models.py as ``torch.nn.Module``s.

A ``Model`` registers each layer of its spec under the spec's name (``add_module("conv1",
...)``), so its ``state_dict()`` keys are the canonical names ("conv1.weight",
"bn1.running_var") and the canonical layout is torch's own: get/set_weights are plain copies.
The only extra key torch keeps, BatchNorm's ``num_batches_tracked``, is left out (it only
matters for momentum=None, which the contract does not use).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reference import models as reference_models

from .. import _checks
from .layers import LAYERS

__all__ = ["Model", "build_model"]

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

# BatchNorm's step counter: a state_dict entry that is not a canonical weight.
_NOT_CANONICAL = "num_batches_tracked"


def _dtype(dtype: object) -> np.dtype:
    try:
        resolved = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        resolved = None
    if resolved not in _checks.FLOAT_DTYPES:
        raise ValueError(f"dtype: got {dtype!r}, expected 'float32' or 'float64'")
    return resolved


class Model(nn.Module):
    """A resolved ModelSpec as a stack of layers, one submodule per spec layer, in order.

    ``forward(x)`` takes and returns tensors (plain PyTorch); ``predict`` takes and returns
    NumPy arrays. The layer kinds' constructors take exactly the spec's params.
    """

    def __init__(self, spec: reference_models.ModelSpec, dtype: object = "float32"):
        super().__init__()
        self.spec = spec
        self.dtype = _dtype(dtype)  # a NumPy dtype; nn.Module has no dtype of its own
        for layer in spec.layers:
            self.add_module(layer.name, LAYERS[layer.kind](**layer.params))
        self.to(TORCH_DTYPES[self.dtype])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)  # (N, C, H, W) ... (N, D) ... (N, K)
        return x

    # -- the NumPy edge ---------------------------------------------------------------------

    def as_tensor(self, x: object) -> torch.Tensor:
        """A NumPy batch (N, C, H, W) as a tensor of the model's dtype, its shape checked.

        A float input of the other dtype is cast (float64 data into a float32 model rounds).
        """
        x = _checks.model_input(x, self.spec.input_shape)
        return torch.from_numpy(np.array(x, dtype=self.dtype, order="C"))

    def get_weights(self) -> dict[str, np.ndarray]:
        """Canonical weights: NumPy copies of the state_dict without num_batches_tracked."""
        return {name: t.detach().numpy().copy() for name, t in self.state_dict().items()
                if not name.endswith(_NOT_CANONICAL)}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy canonical weights in (exact keys and shapes of get_weights(), cast to the dtype).

        Every key is checked before anything is copied (_checks.model_weights), so a bad dict
        changes nothing; complex, str and object arrays are refused, where a plain
        ``np.asarray(value, dtype)`` would drop the imaginary part or parse the strings.
        """
        arrays = _checks.model_weights(weights, self.spec.weight_shapes(), self.dtype)
        state = {name: t for name, t in self.state_dict().items()
                 if not name.endswith(_NOT_CANONICAL)}
        with torch.no_grad():
            for name, target in state.items():  # state_dict tensors share the parameters' memory
                target.copy_(torch.from_numpy(np.ascontiguousarray(arrays[name])))

    def predict(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Logits (N, K) as NumPy of the model's dtype, in inference mode.

        Batch norm uses its running statistics, dropout is off; ``batch_size`` rows go through
        at a time (None: all at once). The train/eval mode is restored afterwards.
        """
        xt = self.as_tensor(x)
        step = len(xt) if batch_size is None else _checks.integer("batch_size", batch_size, 1)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                logits = [self(xt[i:i + step]) for i in range(0, len(xt), max(step, 1))]
        finally:
            self.train(was_training)
        if not logits:
            return np.zeros((0, self.spec.num_classes), dtype=self.dtype)
        return torch.cat(logits).numpy().copy()  # (N, K)


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0,
                dtype: str = "float32", init: str | None = None, weight_decay: float | None = None,
                **options) -> Model:
    """The network ``name`` of reference/models.py with its canonical initial weights.

    ``reference.models.resolve`` checks name, input_shape, num_classes, init, weight_decay (both
    override the tutorial's for every layer) and options (resolve lists them); the weights
    are ``initial_weights(spec, seed, dtype)``, drawn in NumPy, so every backend starts from
    the same numbers.
    """
    dtype = _dtype(dtype)
    seed = _checks.integer("seed", seed, 0)
    spec = reference_models.resolve(name, input_shape, num_classes, init=init,
                                    weight_decay=weight_decay, **options)
    model = Model(spec, dtype)
    model.set_weights(reference_models.initial_weights(spec, seed, dtype))
    return model
