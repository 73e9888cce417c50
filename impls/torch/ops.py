"""The ops of docs/api.md in PyTorch: forward with torch.nn.functional, backward with autograd.

Every forward turns its NumPy inputs into leaf tensors that require grad, runs plain PyTorch
code and keeps the graph (inputs and output tensors) in its cache; every backward asks
``torch.autograd.grad`` for the gradient of that output with ``grad_outputs=dy``. No gradient
formula is written here, so comparing this backend with the reference tests PyTorch itself.

NumPy <-> torch conversion happens only in ``_tensor`` and ``_numpy``. Both copy, so no output
shares memory with an input, the cache or another output, and any input layout (Fortran order,
negative strides, read-only, broadcast views) becomes a C-ordered tensor of the same values.

The edges of docs/api.md where PyTorch's own answer differs from the contract are handled here,
each where it arises: a NaN input of relu (PyTorch passes dy on), max pooling over NaN or all
-inf windows (``padded_max_pool2d``), cross-entropy over a row with a -inf logit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from impls import _checks

# ---------------------------------------------------------------------------------------------
# the NumPy <-> torch edge


def _tensor(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    """A tensor of ``a``'s dtype that owns a copy of ``a``.

    The copy matters: torch.from_numpy shares memory, and a caller changing its array after the
    forward would silently change the values the graph saved for backward.
    """
    return torch.from_numpy(np.array(a, order="C", copy=True)).requires_grad_(requires_grad)


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``t`` (same dtype).

    A copy, not the shared buffer: some ops (sigmoid, tanh, relu) save their output for
    backward, and a caller writing into the returned array must not change it.
    """
    return t.detach().numpy().copy()


def _leaves(*arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The inputs a backward differentiates with respect to."""
    return tuple(_tensor(a, requires_grad=True) for a in arrays)


def _result(op: str, y: torch.Tensor, inputs: tuple[torch.Tensor, ...]):
    """The forward's output as NumPy, and the cache holding the graph from ``inputs`` to ``y``."""
    out = _numpy(y)
    return out, _checks.Cache(op=op, shape=out.shape, dtype=out.dtype, inputs=inputs, output=y)


def _grads(dy: np.ndarray, cache: _checks.Cache,
           input_grad: bool = True) -> tuple[np.ndarray | None, ...]:
    """Gradients of the cached output, weighted by ``dy``, with respect to the cached inputs.

    retain_graph=True keeps the graph alive, so backward may be called again on the same cache.
    ``input_grad=False`` leaves the first input (x) out: autograd then skips its part of the
    graph, and its gradient is returned as None.
    """
    inputs = cache.inputs if input_grad else cache.inputs[1:]
    grads = torch.autograd.grad(cache.output, inputs, grad_outputs=_tensor(dy),
                                retain_graph=True)
    grads = tuple(_numpy(g) for g in grads)
    return grads if input_grad else (None, *grads)


# ---------------------------------------------------------------------------------------------
# padding at the edge: tensor-level functions, shared with the layers (layers.py)


def _symmetric(pads: _checks.Pads) -> bool:
    (top, bottom), (left, right) = pads
    return top == bottom and left == right


def _pad(x: torch.Tensor, pads: _checks.Pads, value: float = 0.0) -> torch.Tensor:
    (top, bottom), (left, right) = pads
    return F.pad(x, (left, right, top, bottom), value=value)  # F.pad lists the last axis first


def _padded(x: torch.Tensor, pads: _checks.Pads,
            value: float = 0.0) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` and the (ph, pw) padding argument for a conv/pool, given resolved pads.

    The padding arguments of F.conv2d/F.max_pool2d/F.avg_pool2d are symmetric (one number per
    axis; padding="same" refuses stride > 1), so uneven pads, e.g. TensorFlow's "same" with the
    odd extra cell bottom/right, are applied with F.pad first. Even pads stay native.
    """
    if _symmetric(pads):
        return x, (pads[0][0], pads[1][0])
    return _pad(x, pads, value), (0, 0)


def padded_conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                  stride: tuple[int, int], pads: _checks.Pads) -> torch.Tensor:
    """F.conv2d with resolved pads ((top, bottom), (left, right)), even or not; zeros pad;
    b None: no bias (F.conv2d's own bias=None)."""
    xp, pad = _padded(x, pads)
    return F.conv2d(xp, w, b, stride=stride, padding=pad)  # (N, F, OH, OW)


def padded_max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                      pads: _checks.Pads) -> torch.Tensor:
    """F.max_pool2d with resolved pads; explicit (uneven) padding is -inf.

    -inf never wins a max, like torch's native padding, whatever the window holds. Input
    holding NaN or -inf (one reduction tells) goes to ``_nonfinite_max_pool2d`` instead.
    """
    if not bool((x > -np.inf).all()):  # False at NaN and at -inf
        return _nonfinite_max_pool2d(x, kernel, stride, pads)
    xp, pad = _padded(x, pads, value=-np.inf)
    return F.max_pool2d(xp, kernel, stride, pad)  # (N, C, OH, OW)


def _first_real_cells(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                      pads: _checks.Pads) -> torch.Tensor:
    """(OH, OW): the flat index in the padded (Hp, Wp) plane of each window's first real cell."""
    (_, wp), (sh, sw), ((top, _), (left, _)) = shape[-2:], stride, pads
    oh, ow = (shape[-2] - kernel[0]) // sh + 1, (shape[-1] - kernel[1]) // sw + 1
    rows = torch.clamp(torch.arange(oh) * sh, min=top)  # (OH,)
    cols = torch.clamp(torch.arange(ow) * sw, min=left)  # (OW,)
    return rows[:, None] * wp + cols[None, :]


def _nonfinite_max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                          pads: _checks.Pads) -> torch.Tensor:
    """Max pooling by the contract's rule for NaN and -inf (docs/api.md, "Edges").

    PyTorch's kernel propagates NaN (by design since pytorch/pytorch#7670), but its update
    ``val > maxval || isnan(val)`` lets the LAST NaN of a window win and passes dy on to it
    unchanged, and behind an explicit F.pad an all -inf window's gradient goes to its first
    cell, padding or not. Here the winner is chosen on a copy where NaN counts as +inf
    (strictly greater wins: the first largest), an all -inf window's winner is its first real
    cell, and y is the input gathered at the winners, times NaN where the window holds a NaN:
    autograd through the gather and the product sends the winner dy * NaN. The gradient is still
    PyTorch's (gather, mul); only the choice of the winner is made here.
    """
    xp = _pad(x, pads, value=-np.inf)  # (N, C, Hp, Wp), explicit even when symmetric
    nan = torch.isnan(xp)
    choose = torch.where(nan, torch.inf, xp).detach()
    best, index = F.max_pool2d(choose, kernel, stride, return_indices=True)  # (N, C, OH, OW)
    first = _first_real_cells(xp.shape, kernel, stride, pads).expand_as(index)
    index = torch.where(best == -torch.inf, first, index)
    y = xp.flatten(2).gather(2, index.flatten(2)).view_as(index)
    nan_windows = F.max_pool2d(nan.to(x.dtype), kernel, stride) > 0
    return y * torch.where(nan_windows, torch.nan, 1.0).to(x.dtype)


def padded_avg_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                      pads: _checks.Pads, count_include_pad: bool) -> torch.Tensor:
    """F.avg_pool2d with resolved pads.

    Uneven pads with count_include_pad=False cannot use F.pad + F.avg_pool2d: the zeros F.pad
    adds would count as real cells. There the window sums are divided by the number of real
    cells, counted by summing a padded mask of ones the same way (divisor_override=1 sums).
    """
    if count_include_pad or _symmetric(pads):
        xp, pad = _padded(x, pads)
        return F.avg_pool2d(xp, kernel, stride, pad, count_include_pad=count_include_pad)

    def window_sum(t):
        return F.avg_pool2d(_pad(t, pads), kernel, stride, divisor_override=1)

    return window_sum(x) / window_sum(torch.ones_like(x[:1, :1]))  # (N, C, OH, OW)


def masked_dropout(x: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with a given keep-mask (0/1 or bool, x's shape): x * mask / (1 - p).

    The kept units' scale mask / (1 - p) is computed first, in x's dtype, as torch's own
    dropout does.
    """
    return x * (mask.to(x.dtype) / (1 - p))


# ---------------------------------------------------------------------------------------------
# conv and pooling


def conv2d_forward(x, w, b, stride=1, padding=0):
    """Same contract as impls/numpy/ops.py::conv2d_forward."""
    geom = _checks.conv2d(x, w, b, stride, padding)
    leaves = _leaves(x, w) if b is None else _leaves(x, w, b)  # (N, C, H, W), (F, C, kH, kW), (F,)
    bt = leaves[2] if b is not None else None
    y = padded_conv2d(leaves[0], leaves[1], bt, geom.stride, geom.pads)  # (N, F, OH, OW)
    return _result("conv2d", y, leaves)


def conv2d_backward(dy, cache, input_grad=True):
    """Same contract as impls/numpy/ops.py::conv2d_backward."""
    _checks.grad_output(dy, cache, "conv2d")
    grads = _grads(dy, cache, _checks.boolean("input_grad", input_grad))
    return grads if len(grads) == 3 else (*grads, None)  # (dx, dw, db); no bias: db None


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Same contract as impls/numpy/ops.py::max_pool2d_forward.

    Native padding never wins a max; explicit (uneven) padding is -inf for the same reason
    (padded_max_pool2d). Ties: PyTorch's CPU kernel sends the gradient to the first maximum of
    the window in row-major order (it keeps a candidate only when strictly greater), as the
    contract asks.
    """
    geom = _checks.pool2d(x, kernel_size, stride, padding)
    (xt,) = _leaves(x)  # (N, C, H, W)
    y = padded_max_pool2d(xt, geom.kernel, geom.stride, geom.pads)  # (N, C, OH, OW)
    return _result("max_pool2d", y, (xt,))


def max_pool2d_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::max_pool2d_backward."""
    _checks.grad_output(dy, cache, "max_pool2d")
    (dx,) = _grads(dy, cache)
    return dx


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Same contract as impls/numpy/ops.py::avg_pool2d_forward.

    Uneven pads with count_include_pad=False need the counting trick of padded_avg_pool2d.
    """
    geom = _checks.pool2d(x, kernel_size, stride, padding)
    include = _checks.count_include_pad(count_include_pad)
    (xt,) = _leaves(x)  # (N, C, H, W)
    y = padded_avg_pool2d(xt, geom.kernel, geom.stride, geom.pads, include)  # (N, C, OH, OW)
    return _result("avg_pool2d", y, (xt,))


def avg_pool2d_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::avg_pool2d_backward."""
    _checks.grad_output(dy, cache, "avg_pool2d")
    (dx,) = _grads(dy, cache)
    return dx


# ---------------------------------------------------------------------------------------------
# dense layers and activations


def linear_forward(x, w, b):
    """Same contract as impls/numpy/ops.py::linear_forward."""
    _checks.linear(x, w, b)
    xt, wt, bt = _leaves(x, w, b)  # (N, ...), (out, D), (out,)
    y = F.linear(torch.flatten(xt, 1), wt, bt)  # (N, out)
    return _result("linear", y, (xt, wt, bt))


def linear_backward(dy, cache, input_grad=True):
    """Same contract as impls/numpy/ops.py::linear_backward."""
    _checks.grad_output(dy, cache, "linear")
    # (dx, dw, db), dx in x's shape since xt is the unflattened leaf
    return _grads(dy, cache, _checks.boolean("input_grad", input_grad))


def relu_forward(x):
    """Same contract as impls/numpy/ops.py::relu_forward (PyTorch's gradient at 0 is 0).

    PyTorch's relu gradient passes dy on at a NaN input (its mask is "not x <= 0"); the
    contract's is NaN there. Where x holds NaN, the output is multiplied by a constant that is
    NaN at those cells and 1 elsewhere: the value is unchanged, and autograd's product rule
    makes that gradient dy * NaN.
    """
    _checks.elementwise(x)
    (xt,) = _leaves(x)
    y = torch.relu(xt)
    nan = torch.isnan(xt.detach())
    if bool(nan.any()):
        y = y * torch.where(nan, torch.nan, 1.0).to(xt.dtype)
    return _result("relu", y, (xt,))


def relu_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::relu_backward."""
    _checks.grad_output(dy, cache, "relu")
    (dx,) = _grads(dy, cache)
    return dx


def sigmoid_forward(x):
    """Same contract as impls/numpy/ops.py::sigmoid_forward."""
    _checks.elementwise(x)
    (xt,) = _leaves(x)
    return _result("sigmoid", torch.sigmoid(xt), (xt,))


def sigmoid_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::sigmoid_backward."""
    _checks.grad_output(dy, cache, "sigmoid")
    (dx,) = _grads(dy, cache)
    return dx


def tanh_forward(x):
    """Same contract as impls/numpy/ops.py::tanh_forward."""
    _checks.elementwise(x)
    (xt,) = _leaves(x)
    return _result("tanh", torch.tanh(xt), (xt,))


def tanh_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::tanh_backward."""
    _checks.grad_output(dy, cache, "tanh")
    (dx,) = _grads(dy, cache)
    return dx


def flatten_forward(x):
    """Same contract as impls/numpy/ops.py::flatten_forward."""
    _checks.flatten(x)
    (xt,) = _leaves(x)  # (N, ...)
    # reshape, not torch.flatten(x, 1): that rejects the 1-D input (N,) the contract maps to
    # (N, 1); D spelled out, because -1 is ambiguous (a RuntimeError) when N = 0
    y = xt.reshape(xt.shape[0], int(np.prod(x.shape[1:])))  # (N, D)
    return _result("flatten", y, (xt,))


def flatten_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::flatten_backward."""
    _checks.grad_output(dy, cache, "flatten")
    (dx,) = _grads(dy, cache)
    return dx


def softmax_forward(x):
    """Same contract as impls/numpy/ops.py::softmax_forward."""
    _checks.softmax(x)
    (xt,) = _leaves(x)  # (N, K)
    return _result("softmax", torch.softmax(xt, dim=1), (xt,))


def softmax_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::softmax_backward."""
    _checks.grad_output(dy, cache, "softmax")
    (dx,) = _grads(dy, cache)
    return dx


# ---------------------------------------------------------------------------------------------
# losses


def _loss_and_grad(loss: torch.Tensor, wrt: torch.Tensor) -> tuple[np.generic, np.ndarray]:
    """A scalar loss as a NumPy scalar of its dtype, and its gradient with respect to ``wrt``."""
    (grad,) = torch.autograd.grad(loss, wrt)
    return _numpy(loss)[()], _numpy(grad)


def softmax_cross_entropy(logits, labels):
    """Same contract as impls/numpy/ops.py::softmax_cross_entropy.

    F.cross_entropy works through log_softmax (no clipping), averages over the batch, and takes
    both forms of labels: class indices (which must be int64, whatever integer type the caller
    used) and probabilities of the logits' dtype.
    """
    kind = _checks.softmax_cross_entropy(logits, labels)
    (lt,) = _leaves(logits)  # (N, K)
    target = _tensor(labels.astype(np.int64) if kind == "integer" else labels)  # (N,) / (N, K)
    z = lt
    finite_rows = torch.isfinite(lt.detach()).all(dim=1)  # (N,)
    if not bool(finite_rows.all()):
        # F.cross_entropy treats a -inf logit as a masked class (finite loss, zero gradient);
        # the contract makes the whole row NaN, loss term and gradient: a constant factor NaN
        # on that row does both through autograd
        z = lt * torch.where(finite_rows, 1.0, torch.nan).to(lt.dtype)[:, None]
    return _loss_and_grad(F.cross_entropy(z, target), lt)


def mse(pred, target):
    """Same contract as impls/numpy/ops.py::mse (F.mse_loss, reduction "mean")."""
    _checks.mse(pred, target)
    (pt,) = _leaves(pred)
    return _loss_and_grad(F.mse_loss(pt, _tensor(target)), pt)


# ---------------------------------------------------------------------------------------------
# normalisation and regularisation


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1,
                      eps=1e-5):
    """Same contract as impls/numpy/ops.py::batchnorm_forward.

    F.batch_norm updates the running statistics in place: it gets fresh tensor copies, returned
    as the new statistics, so the caller's arrays never change.
    """
    training, momentum, eps = _checks.batchnorm(x, gamma, beta, running_mean, running_var,
                                                training, momentum, eps)
    xt, gt, bt = _leaves(x, gamma, beta)  # (N, D) or (N, C, H, W), (C,), (C,)
    mean, var = _tensor(running_mean), _tensor(running_var)  # (C,), (C,)
    y = F.batch_norm(xt, mean, var, gt, bt, training=training, momentum=momentum, eps=eps)
    y, cache = _result("batchnorm", y, (xt, gt, bt))
    return y, cache, _numpy(mean), _numpy(var)


def batchnorm_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::batchnorm_backward."""
    _checks.grad_output(dy, cache, "batchnorm")
    return _grads(dy, cache)  # (dx, dgamma, dbeta)


def dropout_forward(x, p, training=True, mask=None, rng=None):
    """Same contract as impls/numpy/ops.py::dropout_forward.

    Without a mask, training uses F.dropout and so torch's own generator (seed it with
    torch.manual_seed): ``rng``, a NumPy generator, is accepted for the common signature and
    ignored.
    """
    p, training = _checks.dropout(x, p, training, mask)
    (xt,) = _leaves(x)
    if not training:
        y = xt
    elif mask is not None:
        y = masked_dropout(xt, _tensor(mask), p)
    else:
        y = F.dropout(xt, p, training=True)
    return _result("dropout", y, (xt,))


def dropout_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::dropout_backward."""
    _checks.grad_output(dy, cache, "dropout")
    (dx,) = _grads(dy, cache)
    return dx


def local_response_norm_forward(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Same contract as impls/numpy/ops.py::local_response_norm_forward.

    F.local_response_norm is the contract's definition: it zero-pads size // 2 channels before
    and (size - 1) // 2 after, averages the squares over the window (hence alpha / size) and
    returns x / (k + alpha * average) ** beta.
    """
    size, alpha, beta, k = _checks.local_response_norm(x, size, alpha, beta, k)
    (xt,) = _leaves(x)  # (N, C, H, W)
    y = F.local_response_norm(xt, size, alpha=alpha, beta=beta, k=k)
    return _result("local_response_norm", y, (xt,))


def local_response_norm_backward(dy, cache):
    """Same contract as impls/numpy/ops.py::local_response_norm_backward."""
    _checks.grad_output(dy, cache, "local_response_norm")
    (dx,) = _grads(dy, cache)
    return dx


def l2_regularization(weights, weight_decay):
    """Same contract as impls/numpy/ops.py::l2_regularization."""
    arrays, weight_decay = _checks.l2_regularization(weights, weight_decay)
    if not arrays:
        # autograd.grad needs at least one input; an empty sum is a float64 zero
        return np.float64(0.0), ({} if isinstance(weights, dict) else [])
    ws = _leaves(*arrays)
    loss = 0.5 * weight_decay * sum(torch.sum(w * w) for w in ws)
    grads = [_numpy(g) for g in torch.autograd.grad(loss, ws)]
    if isinstance(weights, dict):
        grads = dict(zip(weights, grads, strict=True))
    return _numpy(loss)[()], grads
