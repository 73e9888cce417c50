"""The tutorials' networks (reference/models.py) as a Sequential of NumPy layers.

    model = build_model("simple_cnn", input_shape=(1, 28, 28), num_classes=10)
    logits = model.forward(x, training=True)   # (N, K)
    model.backward(dlogits)                    # fills model.grads
    opt.step(model.grads)

The canonical weight layout is NumPy's own, so ``get_weights``/``set_weights`` only copy.
``model.params`` is a flat dict ("conv1.weight" -> array) holding the layers' own arrays, which
the optimizer updates in place; ``model.grads`` has the same keys after ``backward``.
"""

from __future__ import annotations

import numpy as np

from reference import models as reference_models

from .. import _checks
from . import layers as layers_module
from .layers import Dropout, Layer

__all__ = ["Model", "build_model"]


class Model:
    """A Sequential of layers named by the spec (``model.layers["conv1"]``).

    Attributes: ``spec`` (the resolved ModelSpec), ``dtype`` (np.dtype), ``layers`` (name ->
    Layer, in order), ``params`` / ``buffers`` (flat dicts of the layers' own arrays), ``grads``
    (after ``backward``), ``rng`` (the generator the Dropout layers draw masks from).
    """

    def __init__(self, spec: reference_models.ModelSpec, dtype: object = "float32",
                 seed: int = 0):
        self.spec = spec
        self.dtype = layers_module.dtype_arg(dtype)
        # Its own stream, distinct from the one initial_weights draws the weights from.
        self.rng = np.random.default_rng([seed, 1])
        self.layers: dict[str, Layer] = {
            layer.name: _build_layer(layer, self.dtype, self.rng) for layer in spec.layers}
        self.params = self._collect("params")
        self.buffers = self._collect("buffers")
        self.grads: dict[str, np.ndarray] = {}

    def _collect(self, kind: str) -> dict[str, np.ndarray]:
        return {f"{name}.{suffix}": array for name, layer in self.layers.items()
                for suffix, array in getattr(layer, kind).items()}

    # -----------------------------------------------------------------------------------------
    # forward and backward

    def _input(self, x: object) -> np.ndarray:
        """x (N, C, H, W) float32/float64 (the shared check), cast to the model's dtype."""
        return _checks.model_input(x, self.spec.input_shape).astype(self.dtype, copy=False)

    def _masks(self, masks: object) -> dict[str, np.ndarray]:
        names = {layer.name for layer in self.spec.dropout_layers()}
        if masks is None:
            return {}
        if not isinstance(masks, dict):
            raise TypeError(f"masks: got {type(masks).__name__}, expected a dict Dropout "
                            "layer name -> mask")
        for name in sorted(names ^ set(masks)):
            problem = "missing" if name in names else "not a Dropout layer of this model"
            raise KeyError(f"masks: {name!r} {problem}; expected exactly {sorted(names)}")
        return masks

    def forward(self, x: np.ndarray, training: bool = True,
                masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Logits (N, K). ``masks``: Dropout layer name -> keep mask (else the model's rng)."""
        x = self._input(x)  # (N, C, H, W)
        masks = self._masks(masks)
        for name, layer in self.layers.items():
            if isinstance(layer, Dropout):
                x = layer.forward(x, training, mask=masks.get(name))
            else:
                x = layer.forward(x, training)
        return x  # (N, K)

    def backward(self, dlogits: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate dlogits (N, K) through every layer; fills ``grads``; returns dx.

        ``input_grad=False`` (what training uses) stops at the first layer with parameters
        and skips its input gradient, which nothing needs; then it returns None (a conv or
        linear first layer, as in every model of reference.models).
        """
        input_grad = _checks.boolean("input_grad", input_grad)
        first = next((name for name, layer in self.layers.items() if layer.params), None)
        dx = dlogits
        grads: dict[str, np.ndarray] = {}
        for name, layer in reversed(self.layers.items()):
            last = not input_grad and name == first
            dx = layer.backward(dx, input_grad=not last)
            grads.update({f"{name}.{suffix}": g for suffix, g in layer.grads.items()})
            if last:
                break
        self.grads = {key: grads[key] for key in self.params}  # in layer order
        return dx

    def predict(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Logits (N, K) in inference mode (running statistics, no dropout)."""
        x = self._input(x)
        if batch_size is not None:
            batch_size = _checks.integer("batch_size", batch_size, 1)
        if len(x) == 0:  # no example: no logits (the layers' ops refuse N = 0)
            return np.zeros((0, self.spec.num_classes), self.dtype)
        if batch_size is None:
            return self.forward(x, training=False)
        return np.concatenate([self.forward(x[i:i + batch_size], training=False)
                               for i in range(0, len(x), batch_size)])

    # -----------------------------------------------------------------------------------------
    # weights

    def _arrays(self) -> dict[str, np.ndarray]:
        """Every canonical array of the model (params and buffers), in the spec's order."""
        arrays = {**self.params, **self.buffers}
        return {key: arrays[key] for key in self.spec.weight_shapes()}

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every canonical array, e.g. "conv1.weight", "bn1.running_var"."""
        return {key: array.copy() for key, array in self._arrays().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load every canonical array (exact keys and shapes; real arrays cast to the model's
        dtype, see _checks.model_weights).

        Values are copied INTO the existing arrays, so an optimizer built on this model keeps
        working on them.
        """
        converted = _checks.model_weights(weights, self.spec.weight_shapes(), self.dtype)
        arrays = self._arrays()
        for key, value in converted.items():  # only once every array has passed its checks
            arrays[key][...] = value

    def __repr__(self) -> str:
        body = "\n".join(f"  ({name}): {layer!r}" for name, layer in self.layers.items())
        return f"Model({self.spec.name!r}, dtype={self.dtype.name},\n{body}\n)"


def _build_layer(layer: reference_models.Layer, dtype: np.dtype,
                 rng: np.random.Generator) -> Layer:
    """The NumPy layer for one spec layer (its class has the spec's kind as name)."""
    cls = getattr(layers_module, layer.kind)
    kwargs = dict(layer.params)
    if layer.kind in ("Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d"):
        kwargs["dtype"] = dtype
    if cls is Dropout:
        kwargs["rng"] = rng
    return cls(**kwargs)


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0,
                dtype: str = "float32", init: str | None = None, weight_decay: float | None = None,
                **options: object) -> Model:
    """The network ``name`` of reference/models.py with its canonical initial weights.

    ``seed`` draws the weights (reference.models.initial_weights, the same numbers in every
    backend) and seeds the model's dropout generator; ``init`` and ``weight_decay`` override the
    tutorial's for every layer; ``options`` go to the model (reference.models.resolve lists
    them: mlp's hidden, activation, batchnorm, dropout; three_layer_cnn's hidden, batchnorm;
    cifar_lrn_cnn's norm2; flatten_order).
    """
    seed = _checks.integer("seed", seed, 0)
    dtype = layers_module.dtype_arg(dtype)
    spec = reference_models.resolve(name, input_shape, num_classes, init=init,
                                    weight_decay=weight_decay, **options)
    model = Model(spec, dtype, seed)
    model.set_weights(reference_models.initial_weights(spec, seed, dtype))
    return model
