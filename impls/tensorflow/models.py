"""The tutorials' networks (reference/models.py) as a Keras model of NHWC layers.

    model = build_model("simple_cnn", input_shape=(1, 28, 28), num_classes=10)
    logits = model(x, training=True, masks=None)   # x (N, C, H, W) tensor -> (N, K) tensor
    model.predict(x)                               # NumPy in, NumPy out, inference mode

The layouts, converted at the edges only:

- activations: the model takes NCHW (the contract's layout) and transposes it to NHWC ONCE, at
  its input, because TensorFlow's CPU conv and pooling kernels run NHWC only; every layer then
  stays NHWC, and the logits (N, K) have no layout.
- weights: canonical (PyTorch) <-> TensorFlow in ``get_weights``/``set_weights`` and for the
  gradients: conv (C_out, C_in, kH, kW) <-> (kH, kW, C_in, C_out); Linear (out, in) <-> (in,
  out). The features after a Flatten of an image come in NHWC order (h, w, c) where the
  canonical order is (c, h, w): the first Linear after such a Flatten gets its kernel rows
  permuted (and so would a BatchNorm1d's vectors or a dropout mask between the two); after a
  Flatten with order "nhwc" (reference.models' flatten_order) the canonical order is (h, w, c)
  too, and nothing is permuted.

Keras' own ``get_weights``/``set_weights``/``predict`` (lists of arrays, Keras layouts) are
replaced by the contract's (a dict of canonical arrays, NumPy logits); ``dtype`` is a NumPy dtype.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from reference import models as reference_models

from .. import _checks
from . import layers as layers_module
from .layers import _BatchNorm, dtype_arg

__all__ = ["Model", "build_model"]


def compiled(fn, *args) -> tf.types.experimental.PolymorphicFunction:
    """``tf.function(fn)`` with ``args`` bound, one trace for every batch size.

    One compiled function per model (and per model and optimizer in train.py) is the design,
    not the mistake TensorFlow's "tf.function retracing" warning looks for: it groups
    functions by their code object, so every model's first trace would count against the
    others. A ``functools.partial`` has no code object, and each model is counted alone.
    """
    return tf.function(functools.partial(fn, *args), reduce_retracing=True)


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A per-example shape in TensorFlow's layout: (C, H, W) -> (H, W, C); (D,) unchanged."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else tuple(shape)


def _hwc_order(image: tuple[int, int, int]) -> np.ndarray:
    """perm with tf_features = canonical_features[perm] for a flattened (C, H, W) image."""
    c, h, w = image
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


class _Layout:
    """How one canonical array maps to its variable: a transpose, then a row permutation.

    ``to_tf`` and ``from_tf`` only move elements (transpose, fancy indexing), so a round trip
    is exact bit for bit.
    """

    def __init__(self, axes: tuple[int, ...] | None = None, perm: np.ndarray | None = None):
        self.axes, self.perm = axes, perm

    def to_tf(self, a: np.ndarray) -> np.ndarray:
        a = a if self.axes is None else a.transpose(self.axes)
        return a if self.perm is None else a[self.perm]

    def from_tf(self, a: np.ndarray) -> np.ndarray:
        if self.perm is not None:
            out = np.empty_like(a)
            out[self.perm] = a
            a = out
        return np.ascontiguousarray(a if self.axes is None else a.transpose(np.argsort(self.axes)))


class Model(keras.Model):
    """A Sequential of Keras layers named by the spec, NCHW in, logits out.

    Attributes: ``spec`` (the resolved ModelSpec), ``dtype`` (np.dtype), ``stack`` (the
    layers in spec order), ``params`` / ``buffers`` (canonical name -> variable in TensorFlow's
    layout: trainable ones / running statistics).
    """

    def __init__(self, spec: reference_models.ModelSpec, dtype: object = "float32"):
        dtype = dtype_arg(dtype)
        super().__init__(name=spec.name, dtype=dtype.name)
        self.spec = spec
        self.stack = [_build_layer(layer, dtype) for layer in spec.layers]
        self.built = True  # every layer is built above from the spec's shapes
        self._layouts = _layouts(spec)  # canonical name -> _Layout
        # each Dropout's keep-mask, canonical -> its input's layout (NHWC for an image, (h, w, c)
        # feature order between a Flatten and the first Linear)
        self._mask_layouts = {layer.name: _mask_layout(layer, image)
                              for layer, image in _images(spec) if layer.kind == "Dropout"}
        self._predict_fn = compiled(self._inference)  # predict's forward, once per model

    @property
    def dtype(self) -> np.dtype:
        # Keras' dtype is the variable dtype's name; the contract's is a NumPy dtype
        return np.dtype(self.variable_dtype)

    # -----------------------------------------------------------------------------------------
    # the variables, by canonical name

    def _variables(self) -> dict[str, keras.Variable]:
        out = {}
        for spec_layer, layer in zip(self.spec.layers, self.stack, strict=True):
            if spec_layer.kind in ("Conv2d", "Linear"):
                pairs = {"weight": layer.kernel, "bias": layer.bias}
                if layer.bias is None:  # a bias-free conv
                    del pairs["bias"]
            elif isinstance(layer, _BatchNorm):
                pairs = {"weight": layer.gamma, "bias": layer.beta,
                         "running_mean": layer.running_mean, "running_var": layer.running_var}
            else:
                continue
            out.update({f"{spec_layer.name}.{k}": v for k, v in pairs.items()})
        return out

    @property
    def params(self) -> dict[str, keras.Variable]:
        """Trainable variables by canonical name, in spec order (TensorFlow layouts)."""
        return {k: v for k, v in self._variables().items() if v.trainable}

    @property
    def buffers(self) -> dict[str, keras.Variable]:
        """Running statistics by canonical name."""
        return {k: v for k, v in self._variables().items() if not v.trainable}

    def canonical(self, name: str, value: object) -> np.ndarray:
        """A variable's value (or its gradient) in TensorFlow's layout -> canonical layout."""
        return self._layouts[name].from_tf(np.asarray(value))

    # -----------------------------------------------------------------------------------------
    # forward

    def call(self, x, training=False, masks=None, update_stats=True):
        """x (N, C, H, W) -> logits (N, K). ``masks``: Dropout name -> keep tensor (TF layout,
        see ``tf_masks``); ``update_stats=False`` keeps the running statistics in training."""
        h = tf.transpose(x, (0, 2, 3, 1))  # (N, H, W, C): the layers' layout, see the docstring
        for layer in self.stack:
            if isinstance(layer, layers_module.Dropout):
                keep = None if masks is None else masks[layer.name]
                h = layer(h, training=training, keep=keep)
            elif isinstance(layer, _BatchNorm):
                h = layer(h, training=training, update_stats=update_stats)
            else:
                h = layer(h)
        return h  # (N, K)

    def _inference(self, x: tf.Tensor) -> tf.Tensor:
        return self(x, training=False)

    def inputs_arg(self, x: object) -> np.ndarray:
        """x checked against the spec's (C, H, W) (the shared check), cast to the model's dtype."""
        return _checks.model_input(x, self.spec.input_shape).astype(self.dtype, copy=False)

    def tf_masks(self, masks: object, batch_size: int) -> dict[str, tf.Tensor] | None:
        """Canonical keep-masks (reference.models.dropout_masks) as tensors in the layers'
        layout and dtype; None for None or a model without Dropout."""
        if masks is None:
            return None
        if not isinstance(masks, dict):
            raise TypeError(f"masks: got {type(masks).__name__}, expected a dict Dropout layer "
                            "name -> mask")
        names = set(self._mask_layouts)
        for name in sorted(names ^ set(masks)):
            problem = "missing" if name in names else "not a Dropout layer of this model"
            raise KeyError(f"masks: {name!r} {problem}; expected exactly {sorted(names)}")
        out = {}
        for layer in self.spec.dropout_layers():
            mask = np.asarray(masks[layer.name])
            _checks.same_shape(f"masks[{layer.name!r}]", mask, (batch_size, *layer.in_shape),
                               "(N, *the layer's input shape)")
            out[layer.name] = tf.constant(self._mask_layouts[layer.name](mask), self.dtype)
        return out or None

    def predict(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Logits (N, K) in inference mode (running statistics, no dropout), as NumPy."""
        x = self.inputs_arg(x)
        if batch_size is not None:
            batch_size = _checks.integer("batch_size", batch_size, 1)
        if len(x) == 0:
            return np.zeros((0, self.spec.num_classes), self.dtype)
        step = batch_size or len(x)
        return np.concatenate([self._predict_fn(tf.constant(x[i:i + step])).numpy()
                               for i in range(0, len(x), step)])

    # -----------------------------------------------------------------------------------------
    # weights

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every canonical array, e.g. "conv1.weight" (C_out, C_in, kH, kW), as new arrays."""
        return {name: self.canonical(name, v.numpy()) for name, v in self._variables().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load every canonical array (exact keys and shapes; cast to the model's dtype).

        Nothing is assigned unless every array passes its checks (_checks.model_weights).
        """
        arrays = _checks.model_weights(weights, self.spec.weight_shapes(), self.dtype)
        variables = self._variables()
        converted = {key: self._layouts[key].to_tf(value) for key, value in arrays.items()}
        for key, value in converted.items():
            variables[key].assign(value)


# ---------------------------------------------------------------------------------------------
# construction


def _build_layer(layer: reference_models.Layer, dtype: np.dtype) -> keras.layers.Layer:
    """The Keras layer for one spec layer, built for its NHWC input shape."""
    cls = getattr(layers_module, layer.kind)
    keras_layer = cls(**layer.params, name=layer.name, dtype=dtype.name)
    keras_layer.build((None, *_nhwc(layer.in_shape)))
    return keras_layer


def _images(spec: reference_models.ModelSpec):
    """(layer, image) for every layer: image = the (C, H, W) whose flattened features the
    layer receives in (h, w, c) order where the canonical order is (c, h, w) (after a Flatten
    of an image, up to the first Linear included), else None. A Flatten with order "nhwc"
    has (h, w, c) as its canonical order too: nothing to permute after it."""
    image = None
    for layer in spec.layers:
        if layer.kind == "Flatten" and len(layer.in_shape) == 3:
            yield layer, None
            nhwc = layer.params.get("order", "nchw") == "nhwc"
            image = None if nhwc else layer.in_shape
            continue
        yield layer, image
        if layer.kind == "Linear":
            image = None


def _layouts(spec: reference_models.ModelSpec) -> dict[str, _Layout]:
    """Canonical name -> _Layout, for every array of ``spec.weight_shapes()``."""
    layouts = {}
    for layer, image in _images(spec):
        perm = None if image is None else _hwc_order(image)
        if layer.kind == "Conv2d":
            layouts[f"{layer.name}.weight"] = _Layout(axes=(2, 3, 1, 0))
            if layer.params.get("bias", True):
                layouts[f"{layer.name}.bias"] = _Layout()
        elif layer.kind == "Linear":
            # (out, in) -> (in, out), then the input rows in (h, w, c) order
            layouts[f"{layer.name}.weight"] = _Layout(axes=(1, 0), perm=perm)
            layouts[f"{layer.name}.bias"] = _Layout()
        elif layer.kind in ("BatchNorm1d", "BatchNorm2d"):
            for suffix in ("weight", "bias", "running_mean", "running_var"):
                layouts[f"{layer.name}.{suffix}"] = _Layout(perm=perm)
    return layouts


def _mask_layout(layer: reference_models.Layer, image):
    """Canonical keep-mask (N, *in_shape) -> the Dropout layer's NHWC layout."""
    if len(layer.in_shape) == 3:
        return lambda mask: mask.transpose(0, 2, 3, 1)
    if image is not None:
        perm = _hwc_order(image)
        return lambda mask: mask[:, perm]
    return lambda mask: mask


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int = 0,
                dtype: str = "float32", init: str | None = None, weight_decay: float | None = None,
                **options: object) -> Model:
    """The network ``name`` of reference/models.py with its canonical initial weights.

    ``seed`` draws the weights (reference.models.initial_weights, the same numbers in every
    backend); ``init`` and ``weight_decay`` override the tutorial's for every layer;
    ``options`` go to the model (reference.models.resolve lists them: mlp's hidden,
    activation, batchnorm, dropout; three_layer_cnn's hidden, batchnorm; cifar_lrn_cnn's
    norm2; flatten_order). Dropout without injected masks uses
    TensorFlow's generator (``tf.random.set_seed``).
    """
    seed = _checks.integer("seed", seed, 0)
    dtype = dtype_arg(dtype)
    spec = reference_models.resolve(name, input_shape, num_classes, init=init,
                                    weight_decay=weight_decay, **options)
    model = Model(spec, dtype)
    model.set_weights(reference_models.initial_weights(spec, seed, dtype))
    return model
