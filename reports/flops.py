"""Floating-point operations of a model's forward pass and training step, from its spec.

Only the multiply-adds of convolutions and linear layers are counted (2 FLOPs each): they are
the GEMMs whose rate a machine can reach. Element-wise ops, pooling, normalisation, the loss and
the update are left out: they are memory-bound, so their "FLOPs" say nothing about the time
they take (and in these models they are a few per cent of the count at most).

Per conv/linear layer on a batch of N:

- forward: conv ``2 * N * F * OH * OW * C * kH * kW``, linear ``2 * N * D * out``;
- backward: the weight gradient (dW = dy^T x, the same count as the forward) and the input
  gradient (dx = dy W, the same count again), EXCEPT for the first conv/linear layer: nothing
  needs the gradient of the data, and neither autograd (the input does not require grad) nor a
  GradientTape (only the variables are watched) computes it.

A training step is the forward plus the backward: 3x the forward of every layer but the first,
2x the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference.models import ModelSpec


def conv2d_flops(n: int, c: int, f: int, oh: int, ow: int, kh: int, kw: int) -> int:
    """Forward FLOPs of a convolution: one multiply-add per output cell and kernel tap."""
    return 2 * n * f * oh * ow * c * kh * kw


def linear_flops(n: int, d: int, out: int) -> int:
    """Forward FLOPs of a linear layer (N, D) @ (D, out)."""
    return 2 * n * d * out


@dataclass(frozen=True)
class LayerFlops:
    name: str
    forward: int
    weight_grad: int  # dW
    input_grad: int  # dx; 0 for the first conv/linear layer

    @property
    def step(self) -> int:
        return self.forward + self.weight_grad + self.input_grad


def layer_flops(spec: ModelSpec, batch_size: int) -> list[LayerFlops]:
    """The counted layers of ``spec`` (conv and linear, in order) on a batch of ``batch_size``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size!r}, expected an integer >= 1")
    out = []
    for layer in spec.layers:
        p = layer.params
        if layer.kind == "Conv2d":
            f, oh, ow = layer.out_shape  # (F, OH, OW)
            k = p["kernel_size"]
            kh, kw = (k, k) if isinstance(k, int) else k
            forward = conv2d_flops(batch_size, p["in_channels"], f, oh, ow, kh, kw)
        elif layer.kind == "Linear":
            forward = linear_flops(batch_size, p["in_features"], p["out_features"])
        else:
            continue
        out.append(LayerFlops(layer.name, forward, forward, forward if out else 0))
    return out


def forward_flops(spec: ModelSpec, batch_size: int) -> int:
    """FLOPs of one forward pass (inference) on a batch of ``batch_size``."""
    return sum(layer.forward for layer in layer_flops(spec, batch_size))


def step_flops(spec: ModelSpec, batch_size: int) -> int:
    """FLOPs of one training step (forward + backward) on a batch of ``batch_size``."""
    return sum(layer.step for layer in layer_flops(spec, batch_size))
