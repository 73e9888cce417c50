"""Layers as ``torch.nn.Module``s with the constructors of docs/models.md.

Each layer subclasses the ``torch.nn`` module a PyTorch user would write (``Conv2d`` is an
``nn.Conv2d``, its parameters are ``weight`` and ``bias``, ...), so torch.optim, state_dict and
autograd work on it unchanged. What differs from torch.nn:

- ``padding`` takes every form of docs/api.md (int, pair, pair of pairs, "same", "valid").
  torch.nn's padding argument is one symmetric number per axis (and "same" only for a conv
  with stride 1), so where it can express the padding the native forward runs; where it cannot
  (uneven pads, "same" with stride > 1, whose pads depend on the input size) the layer pads
  first with F.pad, through the tensor-level functions of ops.py that the ops use too.
- ``Dropout`` takes an injected keep-mask (``layer.mask`` or ``forward(x, mask)``) so that every
  backend can drop the same units: y = x * mask / (1 - p); without one, torch's own dropout.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reference.models import flatten_order

from .. import _checks
from . import ops

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Sigmoid", "Tanh", "Flatten",
           "BatchNorm1d", "BatchNorm2d", "Dropout", "LocalResponseNorm", "LAYERS"]


# ---------------------------------------------------------------------------------------------
# padding: native where torch.nn can say it, F.pad first where it cannot


class _Padding:
    """The padding of a conv/pool layer, resolved as far as it can be before the input is seen.

    ``native`` is the symmetric (ph, pw) to hand to the torch.nn module, or None when the layer
    must pad first: uneven pads, or "same" with stride > 1 (its pads depend on the input size).
    """

    def __init__(self, padding: object, kernel: tuple[int, int], stride: tuple[int, int],
                 pool: bool = False):
        self.padding, self.kernel, self.stride = padding, kernel, stride
        size_dependent = (isinstance(padding, str) and padding.lower() == "same"
                          and stride != (1, 1))
        # Any other form resolves without the input: with stride 1, "same" pads k - 1 in total
        # whatever the size, so the kernel stands in for the size.
        self.static = None if size_dependent else _checks.padding_arg(padding, kernel, kernel,
                                                                      stride)
        if pool and self.static is not None:
            # PyTorch's rule, also _checks.pool2d's: no window may lie wholly in the padding.
            for (p0, p1), k in zip(self.static, kernel):
                if max(p0, p1) > k // 2:
                    raise ValueError(f"padding: got {self.static} for kernel_size {kernel}, "
                                     f"expected each pad at most half the kernel "
                                     f"({kernel[0] // 2}, {kernel[1] // 2})")
        self.native = None
        if self.static is not None:
            (top, bottom), (left, right) = self.static
            if top == bottom and left == right:
                self.native = (top, left)

    def pads(self, x: torch.Tensor) -> _checks.Pads:
        """((top, bottom), (left, right)) for input ``x`` (N, C, H, W)."""
        if self.static is not None:
            return self.static
        return _checks.padding_arg(self.padding, tuple(x.shape[-2:]), self.kernel, self.stride)


class _PadFirst:
    """Conv2d, MaxPool2d, AvgPool2d: torch.nn's forward when its padding argument can say it.

    Otherwise the module is built with padding 0 and ``_padded_forward`` pads first; the
    ``padding`` attribute then holds the layer's own padding ("same", uneven pairs), which only
    the repr reads.
    """

    plan: _Padding

    def _adopt(self, plan: _Padding) -> None:
        self.plan = plan
        if plan.native is None:
            self.padding = plan.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.plan.native is not None:
            return super().forward(x)
        return self._padded_forward(x, self.plan.pads(x))

    def _padded_forward(self, x: torch.Tensor, pads: _checks.Pads) -> torch.Tensor:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# layers with weights


class Conv2d(_PadFirst, nn.Conv2d):
    """nn.Conv2d (N, C_in, H, W) -> (N, C_out, OH, OW), weight (C_out, C_in, kH, kW), any padding.

    Uneven pads (e.g. "same" with an even kernel, or with stride > 1) are zeros added by F.pad
    before a convolution without padding: nn.Conv2d's padding is symmetric, and its "same"
    refuses stride > 1 (with an even kernel it pads a copy the same way, and warns).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        kernel = _checks.int_pair("kernel_size", kernel_size, 1)
        stride = _checks.int_pair("stride", stride, 1)
        plan = _Padding(padding, kernel, stride)
        # bias=False: nn.Conv2d's own (no bias parameter; self.bias is None, F.conv2d adds none)
        super().__init__(_checks.integer("in_channels", in_channels, 1),
                         _checks.integer("out_channels", out_channels, 1), kernel, stride,
                         padding=plan.native or 0, bias=_checks.boolean("bias", bias))
        self._adopt(plan)

    def _padded_forward(self, x, pads):
        return ops.padded_conv2d(x, self.weight, self.bias, self.stride, pads)


class Linear(nn.Linear):
    """nn.Linear (N, in) -> (N, out), weight (out, in), bias (out,)."""

    def __init__(self, in_features, out_features):
        super().__init__(_checks.integer("in_features", in_features, 1),
                         _checks.integer("out_features", out_features, 1))


class _BatchNormCheck:
    """The contract's check of a training batch (one value per channel is refused), with the
    shared message: nn.BatchNorm raises its own ValueError text, and only for (N, C) input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # zero-stride NumPy stand-ins: the shared checker reads shapes only
            probe = np.broadcast_to(np.zeros((), np.float32), tuple(x.shape))
            channel = np.zeros(x.shape[1] if x.dim() > 1 else 0, np.float32)
            _checks.batchnorm(probe, channel, channel, channel, channel, True, self.momentum,
                              self.eps)
        return super().forward(x)


class BatchNorm1d(_BatchNormCheck, nn.BatchNorm1d):
    """nn.BatchNorm1d per feature of (N, D): PyTorch's conventions are the contract's.

    Training normalises with the batch's biased variance and updates running_var with the
    unbiased one; momentum is the weight of the new value.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__(_checks.integer("num_features", num_features, 1),
                         eps=_checks.real("eps", eps, 0.0, low_open=True),
                         momentum=_checks.real("momentum", momentum, 0.0, 1.0))


class BatchNorm2d(_BatchNormCheck, nn.BatchNorm2d):
    """nn.BatchNorm2d per channel of (N, C, H, W); conventions as BatchNorm1d."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__(_checks.integer("num_features", num_features, 1),
                         eps=_checks.real("eps", eps, 0.0, low_open=True),
                         momentum=_checks.real("momentum", momentum, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# layers without weights


class MaxPool2d(_PadFirst, nn.MaxPool2d):
    """nn.MaxPool2d (N, C, H, W) -> (N, C, OH, OW), any padding; padded cells never win.

    Uneven pads (TensorFlow's "same") are -inf added by F.pad: nn.MaxPool2d has no "same" and
    pads symmetrically.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        kernel = _checks.int_pair("kernel_size", kernel_size, 1)
        stride = kernel if stride is None else _checks.int_pair("stride", stride, 1)
        plan = _Padding(padding, kernel, stride, pool=True)
        super().__init__(kernel, stride, padding=plan.native or 0)
        self._adopt(plan)

    def _padded_forward(self, x, pads):
        return ops.padded_max_pool2d(x, self.kernel_size, self.stride, pads)


class AvgPool2d(_PadFirst, nn.AvgPool2d):
    """nn.AvgPool2d (N, C, H, W) -> (N, C, OH, OW), any padding.

    Uneven pads go through ops.padded_avg_pool2d, which with count_include_pad=False divides by
    the number of real cells (zeros added by F.pad would otherwise count).
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        kernel = _checks.int_pair("kernel_size", kernel_size, 1)
        stride = kernel if stride is None else _checks.int_pair("stride", stride, 1)
        plan = _Padding(padding, kernel, stride, pool=True)
        super().__init__(kernel, stride, padding=plan.native or 0,
                         count_include_pad=_checks.count_include_pad(count_include_pad))
        self._adopt(plan)

    def _padded_forward(self, x, pads):
        return ops.padded_avg_pool2d(x, self.kernel_size, self.stride, pads,
                                     self.count_include_pad)


class LocalResponseNorm(nn.LocalResponseNorm):
    """nn.LocalResponseNorm across channels: PyTorch's definition is the contract's."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__(_checks.integer("size", size, 1),
                         alpha=_checks.real("alpha", alpha, 0.0),
                         beta=_checks.real("beta", beta, 0.0),
                         k=_checks.real("k", k, 0.0, low_open=True))


class ReLU(nn.ReLU):
    """nn.ReLU; its gradient at exactly 0 is 0."""


class Sigmoid(nn.Sigmoid):
    """nn.Sigmoid."""


class Tanh(nn.Tanh):
    """nn.Tanh."""


class Flatten(nn.Flatten):
    """(N, ...) -> (N, D) in C order: NCHW flatten, the canonical Linear column order.

    ``order="nhwc"`` flattens an (N, C, H, W) input in (h, w, c) order instead, as a tutorial
    that flattens NHWC activations (reference.models); nn.Flatten has no such option, so the
    input is permuted first.
    """

    def __init__(self, order="nchw"):
        super().__init__(start_dim=1)
        self.order = flatten_order("order", order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "nhwc" and x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return super().forward(x)  # a copy where x is permuted (not contiguous)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, order={self.order!r}"


class Dropout(nn.Dropout):
    """Inverted dropout: y = x * mask / (1 - p) in training, y = x in inference.

    The mask (0/1 or bool, x's shape, 1 keeps) comes from ``forward(x, mask)`` or from the
    ``mask`` attribute (how train_step injects reference.models.dropout_masks, since a model's
    forward passes only x); without one, torch's own F.dropout draws it from torch's generator.
    """

    def __init__(self, p=0.5):
        super().__init__(_checks.real("p", p, 0.0, 1.0, high_open=True))
        self.mask: torch.Tensor | np.ndarray | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | np.ndarray | None = None):
        mask = self.mask if mask is None else mask
        if not self.training or mask is None:
            return super().forward(x)
        if tuple(mask.shape) != tuple(x.shape):
            raise ValueError(f"mask: got shape {tuple(mask.shape)}, expected {tuple(x.shape)} "
                             "(the shape of x)")
        return ops.masked_dropout(x, torch.as_tensor(mask), self.p)


# The layer classes by the names reference.models' specs use (Layer.kind).
LAYERS: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in (
    Conv2d, MaxPool2d, AvgPool2d, Linear, ReLU, Sigmoid, Tanh, Flatten, BatchNorm1d,
    BatchNorm2d, Dropout, LocalResponseNorm)}
