"""The tutorials' networks, each described ONCE, as data.

A model is a list of layer specs in PyTorch vocabulary (the class names every backend uses).
`resolve(name, input_shape, num_classes, **options)` fills in what depends on the data (input
channels, flattened sizes, the class count) and returns a `ModelSpec` that each backend turns
into its own layers; `initial_weights(spec, seed, dtype)` draws the starting weights once, in
NumPy, in the canonical layout, so every backend starts from the same numbers.

Canonical weights are a flat dict of NumPy arrays named like PyTorch's state_dict:
``"conv1.weight"`` (C_out, C_in, kH, kW), ``"fc1.weight"`` (out, in) whose input columns are in
the order of the Flatten before it (NCHW (C, H, W) by default; a model built with
``flatten_order="nhwc"`` flattens (H, W, C), as the NHWC tutorials lay their weights out),
``"bn1.running_var"``, ... A bias-free conv (``bias=False``) has no ``"convN.bias"``.

Initialiser and L2 coefficient are the model's (``ModelSpec.init``, ``.weight_decay``) unless a
layer names its own (``Layer.init``, ``Layer.weight_decay``: the CIFAR-10 tutorial decays conv
weights by 0.005 and dense weights by 0.004); ``resolve(init=..., weight_decay=...)`` overrides
every layer's.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# specs


@dataclass(frozen=True)
class Layer:
    """One layer: a class name shared by every backend, a canonical name, hyperparameters."""

    kind: str  # Conv2d, MaxPool2d, AvgPool2d, Linear, ReLU, Sigmoid, Tanh, Flatten,
    #            BatchNorm1d, BatchNorm2d, Dropout, LocalResponseNorm
    name: str  # prefix of its weights: "conv1" -> "conv1.weight", "conv1.bias"
    params: dict[str, Any] = field(default_factory=dict)  # constructor keyword arguments
    in_shape: tuple[int, ...] = ()  # per-example input shape, (C, H, W) or (D,)
    out_shape: tuple[int, ...] = ()  # per-example output shape
    init: str | None = None  # this layer's weight initialiser; None: the model's
    weight_decay: float | None = None  # this layer's L2 coefficient; None: the model's


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    layers: tuple[Layer, ...]
    init: str  # one of INIT_NAMES, "normal(STD)" or "truncated_normal(STD)"
    weight_decay: float  # L2 term 0.5 * weight_decay * sum of squared weights (not biases)
    # init and weight_decay are the defaults of the layers that do not name their own

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every canonical array's name and shape, in layer order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            p = layer.params
            if layer.kind == "Conv2d":
                k = _pair(p["kernel_size"])
                shapes[f"{layer.name}.weight"] = (p["out_channels"], p["in_channels"], *k)
                if p.get("bias", True):
                    shapes[f"{layer.name}.bias"] = (p["out_channels"],)
            elif layer.kind == "Linear":
                shapes[f"{layer.name}.weight"] = (p["out_features"], p["in_features"])
                shapes[f"{layer.name}.bias"] = (p["out_features"],)
            elif layer.kind in ("BatchNorm1d", "BatchNorm2d"):
                for suffix in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{layer.name}.{suffix}"] = (p["num_features"],)
        return shapes

    def decayed(self) -> list[str]:
        """Names of the weights the L2 term covers: conv and linear weights, not biases."""
        return [f"{layer.name}.weight" for layer in self.layers
                if layer.kind in ("Conv2d", "Linear")]

    def layer_init(self, layer: Layer) -> str:
        """The initialiser of ``layer``'s weight: its own, else the model's."""
        return self.init if layer.init is None else layer.init

    def decay(self) -> dict[str, float]:
        """Each decayed weight's L2 coefficient (its layer's, else the model's), by name."""
        return {f"{layer.name}.weight": (self.weight_decay if layer.weight_decay is None
                                         else layer.weight_decay)
                for layer in self.layers if layer.kind in ("Conv2d", "Linear")}

    def l2_groups(self) -> list[tuple[float, list[str]]]:
        """The L2 term as (coefficient, weight names) groups, non-zero coefficients only, in
        layer order: loss = sum over groups of 0.5 * coefficient * sum of w**2, the form
        every backend's train.py and reference ``loss`` compute."""
        groups: dict[float, list[str]] = {}
        for name, coefficient in self.decay().items():
            if coefficient:
                groups.setdefault(coefficient, []).append(name)
        return list(groups.items())

    def dropout_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.kind == "Dropout"]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv(name, out_channels, kernel_size, stride=1, padding=0, bias=True, init=None,
          weight_decay=None):
    return Layer("Conv2d", name, dict(out_channels=out_channels, kernel_size=kernel_size,
                                      stride=stride, padding=padding, bias=bias),
                 init=init, weight_decay=weight_decay)


def _pool(name, kernel_size, stride=None, padding=0):
    return Layer("MaxPool2d", name, dict(kernel_size=kernel_size, stride=stride,
                                         padding=padding))


def _linear(name, out_features=None, init=None, weight_decay=None):  # None: the class count
    return Layer("Linear", name, dict(out_features=out_features), init=init,
                 weight_decay=weight_decay)


def _act(name, kind="ReLU"):
    return Layer(kind, name)


FLATTEN_ORDERS = ("nchw", "nhwc")


def flatten_order(name: str, value: object) -> str:
    """A Flatten's feature order, checked: "nchw" ((C, H, W), PyTorch's and the canonical
    order) or "nhwc" ((H, W, C): the order of a tutorial that flattens NHWC activations, whose
    (in, out) dense weight is then fc1.weight transposed, no row permuted). The layers of
    every backend check with it."""
    if not isinstance(value, str) or value not in FLATTEN_ORDERS:
        raise ValueError(f"{name}: got {value!r}, expected one of "
                         f"{', '.join(map(repr, FLATTEN_ORDERS))}")
    return value


def _flatten(order="nchw"):
    return Layer("Flatten", "flatten", dict(order=flatten_order("flatten_order", order)))


def _dropout(name, p):
    return Layer("Dropout", name, dict(p=p))


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: got {value!r}, expected True or False")
    return bool(value)


# TensorFlow's CIFAR-10 tutorial: tf.nn.lrn(depth_radius=4, bias=1.0, alpha=0.001 / 9.0,
# beta=0.75) is PyTorch's LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1.0).
_TUTORIAL_LRN = dict(size=9, alpha=0.001, beta=0.75, k=1.0)


def _simple_cnn() -> tuple[list[Layer], str, float]:
    # "Deep Learning from Scratch" SimpleConvNet (98.82% on MNIST in the tutorial)
    return ([_conv("conv1", 30, 5), _act("relu1"), _pool("pool1", 2, 2), _flatten(),
             _linear("fc1", 100), _act("relu2"), _linear("fc2")], "normal(0.01)", 0.0)


# The padding of each 3x3 conv of the book's DeepConvNet (deep_convnet.py): the fourth pads 2,
# so a 28x28 input reaches fc1 as 64 x 4 x 4 = 1024 features.
_DEEP_CNN_PADS = (1, 1, 1, 2, 1, 1)


def _deep_cnn() -> tuple[list[Layer], str, float]:
    # its DeepConvNet: 3x3 convs, a max pool after every second conv, He init
    layers: list[Layer] = []
    for block, channels in enumerate((16, 32, 64)):
        for j in range(2):
            i = 2 * block + j + 1
            layers += [_conv(f"conv{i}", channels, 3, 1, _DEEP_CNN_PADS[i - 1]),
                       _act(f"relu{i}")]
        layers.append(_pool(f"pool{block + 1}", 2, 2))
    layers += [_flatten(), _linear("fc1", 50), _act("relu7"), _dropout("dropout1", 0.5),
               _linear("fc2"), _dropout("dropout2", 0.5)]
    return layers, "he_normal", 0.0


def _three_layer_cnn(hidden: int = 100, batchnorm: bool = False
                     ) -> tuple[list[Layer], str, float]:
    # cs231n ThreeLayerConvNet: the 7x7 conv keeps the size (stride 1, pad 3), L2 on weights.
    # hidden: the class's hidden_dim (100; the tutorial's training call passes 500);
    # batchnorm: cs231n's spatial batch norm after the conv, before its ReLU; the conv is then
    # bias-free (the norm's beta is the bias: a bias before it has an exact gradient of 0,
    # which the adaptive optimizers turn into steps of ~lr made of rounding noise).
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"hidden: got {hidden!r}, expected an integer >= 1")
    batchnorm = _flag("batchnorm", batchnorm)
    layers = [_conv("conv1", 32, 7, 1, 3, bias=not batchnorm)]
    if batchnorm:
        layers.append(Layer("BatchNorm2d", "bn1"))
    layers += [_act("relu1"), _pool("pool1", 2, 2), _flatten(), _linear("fc1", int(hidden)),
               _act("relu2"), _linear("fc2")]
    return layers, "normal(0.001)", 1e-3


def _signs_scratch_cnn(flatten_order: str = "nchw") -> tuple[list[Layer], str, float]:
    # The NumPy SIGNS CNN built from scratch (NHWC): conv 3x3, 10 filters, pad 2, stride 2 ->
    # ReLU -> max pool 2 with stride 1 (overlapping windows) -> flatten -> dense; He init.
    return ([_conv("conv1", 10, 3, 2, 2), _act("relu1"), _pool("pool1", 2, 1),
             _flatten(flatten_order), _linear("fc1")], "he_normal", 0.0)


def _signs_cnn(flatten_order: str = "nchw") -> tuple[list[Layer], str, float]:
    # deeplearning.ai course 4 week 1 SIGNS network: its convs have no bias (tf.nn.conv2d with
    # W1, W2 only) and Glorot-normal filters; its dense layer (tf.compat.v1.layers.dense) has
    # a bias and TF1's default initialiser, Glorot uniform
    return ([_conv("conv1", 8, 4, 1, "same", bias=False), _act("relu1"),
             _pool("pool1", 8, 8, "same"),
             _conv("conv2", 16, 2, 1, "same", bias=False), _act("relu2"),
             _pool("pool2", 4, 4, "same"),
             _flatten(flatten_order), _linear("fc1", init="xavier_uniform")],
            "xavier_normal", 0.0)


# The CIFAR-10 tutorial's L2 coefficients: tf.nn.l2_loss(W) * 0.005 on conv weights, * 0.004
# on dense weights; tf.nn.l2_loss is sum(w**2) / 2, so these are the 0.5 * wd * sum(w**2) form.
_CIFAR_CONV_DECAY, _CIFAR_DENSE_DECAY = 0.005, 0.004


def _cifar_lrn_cnn(norm2: bool = False, flatten_order: str = "nchw"
                   ) -> tuple[list[Layer], str, float]:
    # The TensorFlow CIFAR-10 tutorial network (003), its bugs fixed (docs/models.md lists the
    # deviations): conv 5x5x64 SAME -> ReLU -> max pool 3 s2 SAME -> LRN -> conv 5x5x64 SAME ->
    # ReLU -> max pool 2 s2 SAME (its helper's default ksize) -> [LRN] -> dense 256 -> ReLU ->
    # dense. The tutorial computes the second LRN and discards it (its dense layer takes the
    # pool's output): norm2=False (default) is that network, norm2=True applies the LRN.
    # Truncated normal stddev 5e-2 for every weight (both helpers' default).
    conv_decay, dense_decay = _CIFAR_CONV_DECAY, _CIFAR_DENSE_DECAY
    layers = [_conv("conv1", 64, 5, 1, "same", weight_decay=conv_decay), _act("relu1"),
              _pool("pool1", 3, 2, "same"),
              Layer("LocalResponseNorm", "norm1", dict(_TUTORIAL_LRN)),
              _conv("conv2", 64, 5, 1, "same", weight_decay=conv_decay), _act("relu2"),
              _pool("pool2", 2, 2, "same")]
    if _flag("norm2", norm2):
        layers.append(Layer("LocalResponseNorm", "norm2", dict(_TUTORIAL_LRN)))
    layers += [_flatten(flatten_order), _linear("fc1", 256, weight_decay=dense_decay),
               _act("relu3"), _linear("fc2", weight_decay=dense_decay)]
    return layers, "truncated_normal(0.05)", 0.0


def _mlp(hidden: tuple[int, ...] = (100, 100, 100), activation: str = "relu",
         batchnorm: bool = False, dropout: float = 0.0) -> tuple[list[Layer], str, float]:
    # "Deep Learning from Scratch" MultiLayerNet(Extend): Linear -> [BatchNorm] -> act ->
    # [Dropout] per hidden layer, then the output Linear
    kinds = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if activation not in kinds:
        raise ValueError(f"activation: got {activation!r}, expected one of {sorted(kinds)}")
    layers = [_flatten()]
    for i, width in enumerate(hidden, start=1):
        layers.append(_linear(f"fc{i}", width))
        if batchnorm:
            layers.append(Layer("BatchNorm1d", f"bn{i}"))
        layers.append(_act(f"act{i}", kinds[activation]))
        if dropout:
            layers.append(_dropout(f"dropout{i}", dropout))
    layers.append(_linear(f"fc{len(hidden) + 1}"))
    return layers, "he_normal" if activation == "relu" else "xavier_normal", 0.0


MODELS = {
    "simple_cnn": _simple_cnn,
    "deep_cnn": _deep_cnn,
    "three_layer_cnn": _three_layer_cnn,
    "signs_cnn": _signs_cnn,
    "signs_scratch_cnn": _signs_scratch_cnn,
    "cifar_lrn_cnn": _cifar_lrn_cnn,
    "mlp": _mlp,
}

# ---------------------------------------------------------------------------------------------
# resolving shapes


def _same_or_explicit(padding, size, k, s) -> tuple[int, int]:
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return (total // 2, total - total // 2)
    return (padding, padding)


def _window_out(shape, kernel_size, stride, padding) -> tuple[int, int]:
    k = _pair(kernel_size)
    s = _pair(stride if stride is not None else kernel_size)
    out = []
    for size, ki, si in zip(shape[1:], k, s):
        p0, p1 = _same_or_explicit(padding, size, ki, si)
        if size + p0 + p1 < ki:
            raise ValueError(f"input_shape: got {shape}, too small for a {k} window")
        out.append((size + p0 + p1 - ki) // si + 1)
    return (out[0], out[1])


def resolve(name: str, input_shape: tuple[int, int, int], num_classes: int,
            init: str | None = None, weight_decay: float | None = None,
            **options: Any) -> ModelSpec:
    """The model ``name`` for inputs of shape (C, H, W) and ``num_classes`` classes.

    ``init`` and ``weight_decay`` override the tutorial's, for every layer (a layer's own
    initialiser or coefficient included); ``options`` go to models that take some (``mlp``:
    hidden, activation, batchnorm, dropout; ``three_layer_cnn``: hidden, batchnorm;
    ``cifar_lrn_cnn``: norm2, flatten_order; ``signs_cnn``, ``signs_scratch_cnn``:
    flatten_order).
    """
    if name not in MODELS:
        raise ValueError(f"name: got {name!r}, expected one of {', '.join(MODELS)}")
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in input_shape)):
        raise ValueError(f"input_shape: got {input_shape!r}, expected (C, H, W) of positive "
                         "integers")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes: got {num_classes!r}, expected an integer >= 2")
    accepted = sorted(inspect.signature(MODELS[name]).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"options: got {unknown} for model {name!r}, expected some of "
                        f"{accepted}" if accepted else
                        f"options: got {unknown} for model {name!r}, which takes none")
    layers, default_init, default_wd = MODELS[name](**options)
    if init is not None or weight_decay is not None:  # the caller's, for every layer
        layers = [replace(layer, init=layer.init if init is None else None,
                          weight_decay=layer.weight_decay if weight_decay is None else None)
                  for layer in layers]
    init = default_init if init is None else init
    _check_init(init)
    weight_decay = default_wd if weight_decay is None else float(weight_decay)
    if weight_decay < 0:
        raise ValueError(f"weight_decay: got {weight_decay}, expected >= 0")
    for layer in layers:
        if layer.init is not None:
            _check_init(layer.init)
    shape: tuple[int, ...] = tuple(int(v) for v in input_shape)
    resolved = []
    for layer in layers:
        p = dict(layer.params)
        if layer.kind == "Conv2d":
            p["in_channels"] = shape[0]
            out = _window_out(shape, p["kernel_size"], p["stride"], p["padding"])
            new_shape = (p["out_channels"], *out)
        elif layer.kind in ("MaxPool2d", "AvgPool2d"):
            new_shape = (shape[0], *_window_out(shape, p["kernel_size"], p["stride"],
                                                p["padding"]))
        elif layer.kind == "Linear":
            if len(shape) != 1:
                raise ValueError(f"{layer.name}: Linear needs a Flatten before it")
            p["in_features"] = shape[0]
            p["out_features"] = p["out_features"] or int(num_classes)
            new_shape = (p["out_features"],)
        elif layer.kind == "Flatten":
            new_shape = (int(np.prod(shape)),)
        elif layer.kind in ("BatchNorm1d", "BatchNorm2d"):
            p["num_features"] = shape[0]
            new_shape = shape
        else:
            new_shape = shape
        resolved.append(replace(layer, params=p, in_shape=shape, out_shape=new_shape))
        shape = new_shape
    return ModelSpec(name, tuple(int(v) for v in input_shape), int(num_classes),
                     tuple(resolved), init, weight_decay)


# ---------------------------------------------------------------------------------------------
# initial weights


INIT_NAMES = ("he_normal", "xavier_normal", "xavier_uniform", "lecun_normal")
# the parameterised ones: "normal(STD)" and "truncated_normal(STD)" (redrawn beyond 2 STD)
INIT_FORMS = ("normal", "truncated_normal")


def _init_std(init: object) -> float | None:
    """STD of "normal(STD)" / "truncated_normal(STD)" (None for the named initialisers)."""
    if init in INIT_NAMES:
        return None
    if isinstance(init, str) and init.endswith(")") and "(" in init:
        form, _, text = init[:-1].partition("(")
        if form in INIT_FORMS:
            try:
                std = float(text)
            except ValueError:
                std = math.nan
            if math.isfinite(std) and std > 0:
                return std
    raise ValueError(f"init: got {init!r}, expected one of {', '.join(INIT_NAMES)}, "
                     "'normal(STD)' or 'truncated_normal(STD)' with a finite STD > 0")


def _check_init(init: str) -> None:
    _init_std(init)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as PyTorch and Keras count them: a conv's fan includes its kernel."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def truncated_normal(rng: np.random.Generator, std: float,
                     shape: tuple[int, ...]) -> np.ndarray:
    """Normal(0, std) with every value beyond 2 std redrawn, as tf.random.truncated_normal and
    keras.initializers.TruncatedNormal draw it (the result's std is about 0.88 std)."""
    values = rng.normal(0.0, std, shape)
    outside = np.abs(values) > 2 * std
    while outside.any():
        values[outside] = rng.normal(0.0, std, int(outside.sum()))
        outside = np.abs(values) > 2 * std
    return values


def draw(init: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """One weight array (float64) drawn with initialiser ``init``.

    he_normal: N(0, 2/fan_in); xavier_normal: N(0, 2/(fan_in + fan_out)); xavier_uniform:
    U(+-sqrt(6/(fan_in + fan_out))); lecun_normal: N(0, 1/fan_in) (the "Xavier" of "Deep
    Learning from Scratch", sqrt(1/n)); normal(STD): N(0, STD^2); truncated_normal(STD):
    N(0, STD^2) redrawn beyond 2 STD. Only truncated_normal is truncated.
    """
    std = _init_std(init)
    fan_in, fan_out = fans(shape)
    if init == "he_normal":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    if init == "xavier_normal":
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    if init == "xavier_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if init == "lecun_normal":
        return rng.normal(0.0, math.sqrt(1.0 / fan_in), shape)
    if init.startswith("truncated_normal("):
        return truncated_normal(rng, std, shape)
    return rng.normal(0.0, std, shape)


def initial_weights(spec: ModelSpec, seed: int = 0,
                    dtype: str | np.dtype = "float32") -> dict[str, np.ndarray]:
    """Canonical starting weights: drawn once in NumPy from ``seed``, then cast to ``dtype``.

    Weights follow their layer's initialiser (``spec.layer_init``), drawn in layer order from
    one generator; biases and batch-norm beta and running mean start at 0,
    batch-norm gamma and running variance at 1.
    """
    rng = np.random.default_rng(seed)
    weights = {}
    layers = {layer.name: layer for layer in spec.layers}
    for name, shape in spec.weight_shapes().items():
        prefix, suffix = name.rsplit(".", 1)
        layer = layers[prefix]
        if suffix == "weight" and not layer.kind.startswith("BatchNorm"):
            value = draw(spec.layer_init(layer), shape, rng)
        elif suffix in ("weight", "running_var"):
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        weights[name] = value.astype(dtype)
    return weights


def dropout_masks(spec: ModelSpec, batch_size: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One keep-mask per Dropout layer (1 keeps, P(keep) = 1 - p), in layer order.

    Drawn in NumPy so that every backend drops the same units when parity is wanted.
    """
    return {layer.name: (rng.random((batch_size, *layer.in_shape)) >= layer.params["p"])
            .astype(np.float32) for layer in spec.dropout_layers()}


# ---------------------------------------------------------------------------------------------
# the oracle for whole models: reference/ops.py chained over a spec


def forward(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray,
            training: bool = False, masks: dict[str, np.ndarray] | None = None
            ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits (N, K) in float64 from the loop reference, one layer after the other, and (in
    training mode) each batch norm's new running statistics by canonical name.

    ``masks``: each Dropout layer's keep-mask by layer name (needed in training mode).
    """
    from reference import ops as ref

    a = np.asarray(x, dtype=np.float64)
    stats: dict[str, np.ndarray] = {}
    for layer in spec.layers:
        p, kind = layer.params, layer.kind

        def w(suffix: str, name: str = layer.name) -> np.ndarray:
            return np.asarray(weights[f"{name}.{suffix}"], dtype=np.float64)

        if kind == "Conv2d":
            bias = w("bias") if p.get("bias", True) else None
            a, _ = ref.conv2d_forward(a, w("weight"), bias, p["stride"], p["padding"])
        elif kind == "MaxPool2d":
            a, _ = ref.max_pool2d_forward(a, p["kernel_size"], p["stride"], p["padding"])
        elif kind == "AvgPool2d":
            a, _ = ref.avg_pool2d_forward(a, p["kernel_size"], p["stride"], p["padding"],
                                          p.get("count_include_pad", True))
        elif kind == "Linear":
            a, _ = ref.linear_forward(a, w("weight"), w("bias"))
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            a, _, mean, var = ref.batchnorm_forward(
                a, w("weight"), w("bias"), w("running_mean"), w("running_var"), training,
                p.get("momentum", 0.1), p.get("eps", 1e-5))
            stats[f"{layer.name}.running_mean"], stats[f"{layer.name}.running_var"] = mean, var
        elif kind == "Dropout":
            if training:
                a, _ = ref.dropout_forward(a, p["p"], True, masks[layer.name])
        elif kind == "LocalResponseNorm":
            a, _ = ref.local_response_norm_forward(a, **p)
        elif kind == "Flatten" and p.get("order", "nchw") == "nhwc" and a.ndim == 4:
            a, _ = ref.flatten_forward(np.ascontiguousarray(a.transpose(0, 2, 3, 1)))
        elif kind in ("ReLU", "Sigmoid", "Tanh", "Flatten"):
            a, _ = getattr(ref, f"{kind.lower()}_forward")(a)
        else:
            raise ValueError(f"spec: got a layer of kind {kind!r}, which has no reference")
    return a, stats


def loss(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
         masks: dict[str, np.ndarray] | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """Training-mode loss from the loop reference: mean softmax cross-entropy plus, for each
    decayed weight, 0.5 * its coefficient (``spec.decay()``) * the sum of its squares; and the
    new running statistics."""
    from reference import ops as ref

    logits, stats = forward(spec, weights, x, training=True, masks=masks)
    data_loss, _ = ref.softmax_cross_entropy(logits, y)
    l2 = 0.0
    for coefficient, names in spec.l2_groups():
        term, _ = ref.l2_regularization([weights[k] for k in names], coefficient)
        l2 += term
    return float(data_loss + l2), stats
