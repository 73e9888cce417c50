"""The reference: every op of docs/api.md, forward and backward, slow on purpose.

This module is the oracle the three backends are compared with, so it is written to be checked
by eye against the formula rather than to be fast:

- explicit Python loops over the batch, the channels and the output pixels; a NumPy reduction
  only over one small window or one row;
- float64 throughout: inputs are converted with ``np.asarray(x, dtype=np.float64)`` and every
  result is float64;
- no shared code with the backends: padding ("same" included) is resolved here, in plain code,
  independently of impls/_checks.py, so that a mistake in the shared checker shows up as a
  parity failure instead of being shared by every implementation;
- bad input fails an assert or a plain ValueError, nothing more polished;
- a cache is a plain dict; backward never changes it, nor its other inputs.

The reference has no random number generator: ``dropout_forward`` in training needs an explicit
mask (unless p == 0).

Its own backward passes are checked against central differences (reference/gradcheck.py), and
its forward passes against published and hand-worked known answers (reference/vectors/).
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# geometry, resolved here on purpose rather than taken from impls/_checks.py


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _pair(value):
    """An int or an (h, w) pair, as an (h, w) pair of ints."""
    if isinstance(value, (tuple, list)):
        assert len(value) == 2, value
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _same_pads(size, kernel, stride):
    """TensorFlow's SAME rule for one axis: (before, after)."""
    out = (size + stride - 1) // stride  # ceil(size / stride)
    total = (out - 1) * stride + kernel - size
    if total < 0:
        total = 0
    before = total // 2
    return before, total - before  # the odd extra cell goes after (bottom / right)


def _resolve_pads(padding, size_hw, kernel_hw, stride_hw):
    """Any padding form -> ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return (0, 0), (0, 0)
        if padding.lower() == "same":
            return (_same_pads(size_hw[0], kernel_hw[0], stride_hw[0]),
                    _same_pads(size_hw[1], kernel_hw[1], stride_hw[1]))
        raise ValueError(f"padding {padding!r}")
    if isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list)):
        (top, bottom), (left, right) = padding
        return (int(top), int(bottom)), (int(left), int(right))
    ph, pw = _pair(padding)
    return (ph, ph), (pw, pw)


def _window_geometry(x_shape, kernel_hw, stride, padding):
    """(kernel, stride, pads, out) for a window op over x (N, C, H, W)."""
    kernel = _pair(kernel_hw)
    stride = _pair(stride)
    assert min(kernel) >= 1 and min(stride) >= 1, (kernel, stride)
    size = (x_shape[2], x_shape[3])
    pads = _resolve_pads(padding, size, kernel, stride)
    out = []
    for axis in range(2):
        padded = size[axis] + pads[axis][0] + pads[axis][1]
        assert min(pads[axis]) >= 0 and kernel[axis] <= padded, (pads, kernel, size)
        out.append((padded - kernel[axis]) // stride[axis] + 1)  # floor: no ceil mode
    return kernel, stride, pads, (out[0], out[1])


def _pad(x, pads, value):
    """x (N, C, H, W) surrounded by `value`: (N, C, top + H + bottom, left + W + right)."""
    (top, bottom), (left, right) = pads
    n, c, h, w = x.shape
    xp = np.full((n, c, top + h + bottom, left + w + right), value, dtype=np.float64)
    xp[:, :, top:top + h, left:left + w] = x
    return xp


def _unpad(xp, pads):
    (top, bottom), (left, right) = pads
    return xp[:, :, top:xp.shape[2] - bottom, left:xp.shape[3] - right].copy()


def _window(i, j, kernel, stride):
    """Row and column slices of output pixel (i, j)'s window in the padded input."""
    return (slice(i * stride[0], i * stride[0] + kernel[0]),
            slice(j * stride[1], j * stride[1] + kernel[1]))


# ---------------------------------------------------------------------------------------------
# convolution


def conv2d_forward(x, w, b, stride=1, padding=0):
    """y[n, f, i, j] = b[f] + sum_{c, p, q} xpad[n, c, i*sH + p, j*sW + q] * w[f, c, p, q].

    x (N, C, H, W), w (F, C, kH, kW), b (F,) or None -> y (N, F, OH, OW); xpad = x zero-padded.
    b = None: no bias (b[f] = 0 above), and the backward gives db = None.
    """
    x, w = _f64(x), _f64(w)
    bias = b is not None
    b = _f64(b) if bias else np.zeros(w.shape[0])
    assert x.ndim == 4 and w.ndim == 4 and b.shape == (w.shape[0],) and w.shape[1] == x.shape[1]
    kernel, stride, pads, (oh, ow) = _window_geometry(x.shape, w.shape[2:], stride, padding)
    xp = _pad(x, pads, 0.0)
    n_batch, n_filters = x.shape[0], w.shape[0]
    y = np.zeros((n_batch, n_filters, oh, ow))
    for n in range(n_batch):
        for f in range(n_filters):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = _window(i, j, kernel, stride)
                    y[n, f, i, j] = np.sum(xp[n, :, rows, cols] * w[f]) + b[f]
    cache = {"x": x, "w": w, "bias": bias, "kernel": kernel, "stride": stride, "pads": pads}
    return y, cache


def conv2d_backward(dy, cache, input_grad=True):
    """For every (n, f, i, j): dxpad[n, :, window] += w[f] dy[n, f, i, j];
    dw[f] += xpad[n, :, window] dy[n, f, i, j]; db[f] += dy[n, f, i, j]. dx = dxpad cropped
    (None when input_grad is False); db None when the forward had no bias (b = None)."""
    dy = _f64(dy)
    x, w = cache["x"], cache["w"]
    kernel, stride, pads = cache["kernel"], cache["stride"], cache["pads"]
    xp = _pad(x, pads, 0.0)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0])
    n_batch, n_filters, oh, ow = dy.shape
    for n in range(n_batch):
        for f in range(n_filters):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = _window(i, j, kernel, stride)
                    dxp[n, :, rows, cols] += w[f] * dy[n, f, i, j]
                    dw[f] += xp[n, :, rows, cols] * dy[n, f, i, j]
                    db[f] += dy[n, f, i, j]
    return (_unpad(dxp, pads) if input_grad else None), dw, (db if cache["bias"] else None)


# ---------------------------------------------------------------------------------------------
# pooling


def _pool_geometry(x, kernel_size, stride, padding):
    kernel = _pair(kernel_size)
    geometry = _window_geometry(x.shape, kernel, kernel if stride is None else stride, padding)
    for (before, after), k in zip(geometry[2], kernel):
        # no window may lie wholly in the padding
        assert before <= k // 2 and after <= k // 2, (geometry[2], kernel)
    return geometry


def _first_max(window, real):
    """(p, q) of the winner of a 2-D window: the first cell in row-major order holding its
    largest value, NaN counted as +inf (strict > keeps the first); a window whose real cells
    (``real``, a boolean window) are all -inf is won by its first real cell."""
    values = np.where(np.isnan(window), np.inf, window)
    best = None
    for p in range(window.shape[0]):
        for q in range(window.shape[1]):
            if real[p, q] and (best is None or values[p, q] > values[best]):
                best = (p, q)
    return best


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """y[n, c, i, j] = max over the window of xpad, where padded cells are -inf (never win);
    NaN if the window holds a NaN.

    x (N, C, H, W) -> y (N, C, OH, OW).
    """
    x = _f64(x)
    assert x.ndim == 4
    kernel, stride, pads, (oh, ow) = _pool_geometry(x, kernel_size, stride, padding)
    xp = _pad(x, pads, -np.inf)
    n_batch, channels = x.shape[:2]
    y = np.zeros((n_batch, channels, oh, ow))
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = _window(i, j, kernel, stride)
                    y[n, c, i, j] = np.max(xp[n, c, rows, cols])  # np.max propagates NaN
    cache = {"x": x, "kernel": kernel, "stride": stride, "pads": pads}
    return y, cache


def max_pool2d_backward(dy, cache):
    """Each dy[n, c, i, j] goes whole to the window's winner (_first_max); overlaps accumulate.
    The winner of a window holding NaN gets dy * NaN."""
    dy = _f64(dy)
    kernel, stride, pads = cache["kernel"], cache["stride"], cache["pads"]
    xp = _pad(cache["x"], pads, -np.inf)
    real = _pad(np.ones_like(cache["x"]), pads, 0.0) > 0
    dxp = np.zeros_like(xp)
    n_batch, channels, oh, ow = dy.shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = _window(i, j, kernel, stride)
                    window = xp[n, c, rows, cols]
                    p, q = _first_max(window, real[n, c, rows, cols])
                    g = dy[n, c, i, j] * (np.nan if np.isnan(window).any() else 1.0)
                    dxp[n, c, rows.start + p, cols.start + q] += g
    return _unpad(dxp, pads)


def _avg_divisors(x_shape, kernel, stride, pads, out, count_include_pad):
    """divisor[i, j]: kH * kW, or the number of real (unpadded) cells in window (i, j)."""
    real = _pad(np.ones((1, 1) + tuple(x_shape[2:])), pads, 0.0)[0, 0]  # 1 real, 0 padded
    divisor = np.zeros(out)
    for i in range(out[0]):
        for j in range(out[1]):
            rows, cols = _window(i, j, kernel, stride)
            divisor[i, j] = kernel[0] * kernel[1] if count_include_pad else np.sum(real[rows, cols])
    return divisor


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """y[n, c, i, j] = sum of xpad over the window / divisor[i, j] (padded cells are 0).

    x (N, C, H, W) -> y (N, C, OH, OW); divisor kH * kW, or the real cells in the window.
    """
    x = _f64(x)
    assert x.ndim == 4 and isinstance(count_include_pad, (bool, np.bool_))
    kernel, stride, pads, out = _pool_geometry(x, kernel_size, stride, padding)
    divisor = _avg_divisors(x.shape, kernel, stride, pads, out, count_include_pad)
    xp = _pad(x, pads, 0.0)
    n_batch, channels = x.shape[:2]
    y = np.zeros((n_batch, channels) + out)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out[0]):
                for j in range(out[1]):
                    rows, cols = _window(i, j, kernel, stride)
                    y[n, c, i, j] = np.sum(xp[n, c, rows, cols]) / divisor[i, j]
    cache = {"x_shape": x.shape, "kernel": kernel, "stride": stride, "pads": pads,
             "divisor": divisor}
    return y, cache


def avg_pool2d_backward(dy, cache):
    """Each cell of window (i, j) gets dy[n, c, i, j] / divisor[i, j].

    The share that falls on padded cells is dropped with the padding.
    """
    dy = _f64(dy)
    kernel, stride, pads = cache["kernel"], cache["stride"], cache["pads"]
    divisor = cache["divisor"]
    dxp = _pad(np.zeros(cache["x_shape"]), pads, 0.0)
    n_batch, channels, oh, ow = dy.shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = _window(i, j, kernel, stride)
                    dxp[n, c, rows, cols] += dy[n, c, i, j] / divisor[i, j]
    return _unpad(dxp, pads)


# ---------------------------------------------------------------------------------------------
# dense


def linear_forward(x, w, b):
    """y[n, o] = sum_d x2[n, d] w[o, d] + b[o], with x2 = x reshaped (N, D) in C order.

    x (N, ...), w (O, D), b (O,) -> y (N, O).
    """
    x, w, b = _f64(x), _f64(w), _f64(b)
    x2 = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # (N, D); -1 fails when N = 0
    assert w.ndim == 2 and w.shape[1] == x2.shape[1] and b.shape == (w.shape[0],)
    y = np.zeros((x2.shape[0], w.shape[0]))
    for n in range(x2.shape[0]):
        for o in range(w.shape[0]):
            y[n, o] = np.sum(x2[n] * w[o]) + b[o]
    return y, {"x": x, "w": w}


def linear_backward(dy, cache, input_grad=True):
    """dx2[n] = sum_o dy[n, o] w[o]; dw[o] = sum_n dy[n, o] x2[n]; db[o] = sum_n dy[n, o].
    dx = dx2 in x's shape (None when input_grad is False)."""
    dy = _f64(dy)
    x, w = cache["x"], cache["w"]
    x2 = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    dx2 = np.zeros_like(x2)
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0])
    for n in range(x2.shape[0]):
        for o in range(w.shape[0]):
            dx2[n] += dy[n, o] * w[o]
            dw[o] += dy[n, o] * x2[n]
            db[o] += dy[n, o]
    return (dx2.reshape(x.shape) if input_grad else None), dw, db


# ---------------------------------------------------------------------------------------------
# element-wise activations


def _elementwise(fn, *arrays):
    out = np.zeros(arrays[0].shape)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(a[idx] for a in arrays))
    return out


def relu_forward(x):
    """y = max(x, 0); NaN stays NaN."""
    x = _f64(x)
    return _elementwise(lambda v: v if v > 0 or math.isnan(v) else 0.0, x), {"x": x}


def relu_backward(dy, cache):
    """dx = dy where x > 0, else 0 (so the gradient at exactly 0 is 0); NaN where x is NaN."""
    def grad(g, v):
        if math.isnan(v):
            return math.nan
        return g if v > 0 else 0.0

    return _elementwise(grad, _f64(dy), cache["x"])


def _sigmoid(v):
    # the two branches keep exp's argument <= 0, so nothing overflows
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x))."""
    y = _elementwise(_sigmoid, _f64(x))
    return y, {"y": y}


def sigmoid_backward(dy, cache):
    """dx = dy * y * (1 - y)."""
    return _elementwise(lambda g, s: g * s * (1.0 - s), _f64(dy), cache["y"])


def tanh_forward(x):
    """y = tanh(x)."""
    y = _elementwise(math.tanh, _f64(x))
    return y, {"y": y}


def tanh_backward(dy, cache):
    """dx = dy * (1 - y**2)."""
    return _elementwise(lambda g, t: g * (1.0 - t * t), _f64(dy), cache["y"])


def flatten_forward(x):
    """(N, ...) -> (N, D), C order."""
    x = _f64(x)
    assert x.ndim >= 1
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:]))).copy(), {"shape": x.shape}


def flatten_backward(dy, cache):
    """dx = dy reshaped back to x's shape."""
    return _f64(dy).reshape(cache["shape"]).copy()


# ---------------------------------------------------------------------------------------------
# softmax and losses


def _log_softmax_row(row):
    """row - logsumexp(row) = (row - m) - log1p(sum of exp(row[j] - m) over j != argmax), m the
    row max: exp never overflows, and a dominant entry's log-probability (log1p of a tiny sum)
    keeps its digits, which log(1 + tiny) would round away."""
    m = np.max(row)
    shifted = row - m
    top = int(np.argmax(row))
    rest = math.fsum(math.exp(v) for j, v in enumerate(shifted) if j != top)
    return shifted - math.log1p(rest)


def softmax_forward(x):
    """y[n] = exp(x[n] - max x[n]) / sum exp(x[n] - max x[n]), row by row; x, y (N, K)."""
    x = _f64(x)
    assert x.ndim == 2
    y = np.zeros_like(x)
    for n in range(x.shape[0]):
        e = np.exp(x[n] - np.max(x[n]))
        y[n] = e / np.sum(e)
    return y, {"y": y}


def softmax_backward(dy, cache):
    """dx[n] = y[n] * (dy[n] - sum_k dy[n, k] y[n, k])."""
    dy, y = _f64(dy), cache["y"]
    dx = np.zeros_like(y)
    for n in range(y.shape[0]):
        dx[n] = y[n] * (dy[n] - np.sum(dy[n] * y[n]))
    return dx


def _targets(labels, shape):
    """Integer classes (N,) -> one-hot (N, K); probabilities (N, K) -> float64 copy."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        assert np.issubdtype(labels.dtype, np.integer), labels.dtype
        t = np.zeros(shape)
        for n in range(shape[0]):
            t[n, labels[n]] = 1.0
        return t
    assert labels.shape == shape, (labels.shape, shape)
    return _f64(labels).copy()


def softmax_cross_entropy(logits, labels):
    """loss = mean_n -sum_k t[n, k] log_softmax(logits)[n, k]; dlogits = (softmax sum_k t - t) / N.

    The factor sum_k t[n, k] is 1 for one-hot labels and for exact probabilities; kept so the
    gradient is exact when probability rows sum to 1 only up to rounding.

    logits (N, K); labels int (N,) (t = one-hot) or probabilities (N, K) (t = labels).
    """
    z = _f64(logits)
    assert z.ndim == 2 and z.shape[0] >= 1
    t = _targets(labels, z.shape)
    n_batch = z.shape[0]
    loss = 0.0
    dz = np.zeros_like(z)
    for n in range(n_batch):
        if not np.all(np.isfinite(z[n])):
            # a row with NaN or +-inf (even one -inf): NaN loss term and gradient row
            loss += math.nan
            dz[n] = math.nan
            continue
        log_p = _log_softmax_row(z[n])
        loss += -np.sum(t[n] * log_p)
        dz[n] = (np.exp(log_p) * np.sum(t[n]) - t[n]) / n_batch
    return np.float64(loss / n_batch), dz


def mse(pred, target):
    """loss = mean over all elements of (pred - target)**2; dpred = 2 (pred - target) / size."""
    pred, target = _f64(pred), _f64(target)
    assert pred.shape == target.shape and pred.size >= 1
    total = 0.0
    dpred = np.zeros_like(pred)
    for idx in np.ndindex(pred.shape):
        diff = pred[idx] - target[idx]
        total += diff * diff
        dpred[idx] = 2.0 * diff / pred.size
    return np.float64(total / pred.size), dpred


# ---------------------------------------------------------------------------------------------
# batch norm


def _channel(a, c):
    """All values of channel/feature c: (N,) for a (N, D), (N, H, W) for a (N, C, H, W)."""
    return a[:, c]


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1,
                      eps=1e-5):
    """Per feature of (N, D) / per channel of (N, C, H, W), PyTorch's conventions.

    Training: mean and biased var over the channel's n values; y = gamma (x - mean) /
    sqrt(var + eps) + beta; running_mean <- (1 - momentum) running_mean + momentum mean;
    running_var <- (1 - momentum) running_var + momentum var n / (n - 1).
    Inference: the running statistics normalise and come back unchanged (copies).
    """
    x, gamma, beta = _f64(x), _f64(gamma), _f64(beta)
    running_mean, running_var = _f64(running_mean), _f64(running_var)
    assert x.ndim in (2, 4)
    channels = x.shape[1]
    for a in (gamma, beta, running_mean, running_var):
        assert a.shape == (channels,)
    y = np.zeros_like(x)
    xhat = np.zeros_like(x)
    std = np.zeros(channels)
    new_mean, new_var = running_mean.copy(), running_var.copy()
    for c in range(channels):
        values = _channel(x, c)
        if training:
            count = values.size
            assert count > 1
            mean = np.sum(values) / count
            var = np.sum((values - mean) ** 2) / count  # biased: normalises
            new_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
            new_var[c] = (1 - momentum) * running_var[c] + momentum * var * count / (count - 1)
        else:
            mean, var = running_mean[c], running_var[c]
        std[c] = math.sqrt(var + eps)
        xhat[:, c] = (values - mean) / std[c]
        y[:, c] = gamma[c] * xhat[:, c] + beta[c]
    cache = {"xhat": xhat, "std": std, "gamma": gamma, "training": bool(training)}
    return y, cache, new_mean, new_var


def batchnorm_backward(dy, cache):
    """dgamma = sum dy xhat; dbeta = sum dy; dx, per channel over its n values:

    training:  dx = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat))
    inference: dx = gamma / std * dy   (the running statistics are constants)
    """
    dy = _f64(dy)
    xhat, std, gamma = cache["xhat"], cache["std"], cache["gamma"]
    channels = gamma.shape[0]
    dx = np.zeros_like(dy)
    dgamma = np.zeros(channels)
    dbeta = np.zeros(channels)
    for c in range(channels):
        g, h = _channel(dy, c), _channel(xhat, c)
        dgamma[c] = np.sum(g * h)
        dbeta[c] = np.sum(g)
        if cache["training"]:
            dx[:, c] = gamma[c] / std[c] * (g - np.mean(g) - h * np.mean(g * h))
        else:
            dx[:, c] = gamma[c] / std[c] * g
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------------------------
# dropout


def dropout_forward(x, p, training=True, mask=None, rng=None):
    """Inverted dropout: y = x * mask / (1 - p) in training, y = x in inference.

    The reference draws no random numbers (``rng`` is accepted for the signature and ignored):
    in training with p > 0 the mask is required. A given mask is used as is, even with p = 0;
    without one, p = 0 keeps everything.
    """
    x = _f64(x)
    assert 0.0 <= p < 1.0
    if not training:
        return x.copy(), {"scale": None}
    if mask is None:
        if p > 0:
            raise ValueError("the reference dropout needs an explicit mask when training, p > 0")
        mask = np.ones_like(x)
    mask = _f64(mask)
    assert mask.shape == x.shape
    scale = mask / (1.0 - p)
    return x * scale, {"scale": scale}


def dropout_backward(dy, cache):
    """dx = dy * mask / (1 - p) in training, dy in inference."""
    dy = _f64(dy)
    return dy.copy() if cache["scale"] is None else dy * cache["scale"]


# ---------------------------------------------------------------------------------------------
# local response norm


def _lrn_window(c, size, channels):
    """The channels c' summed for channel c: c - size // 2 .. c + (size - 1) // 2, inside [0, C)."""
    return range(max(c - size // 2, 0), min(c + (size - 1) // 2, channels - 1) + 1)


def local_response_norm_forward(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """y[:, c] = x[:, c] / d[:, c]**beta, x (N, C, H, W).

    d[:, c] = k + alpha / size * sum_{c' in window(c)} x[:, c']**2 (PyTorch's definition).
    """
    x = _f64(x)
    assert x.ndim == 4 and size >= 1
    n_batch, channels, height, width = x.shape
    d = np.zeros_like(x)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    s = sum(x[n, cc, i, j] ** 2 for cc in _lrn_window(c, size, channels))
                    d[n, c, i, j] = k + alpha / size * s
    y = x * d ** (-beta)
    return y, {"x": x, "d": d, "size": size, "alpha": alpha, "beta": beta}


def local_response_norm_backward(dy, cache):
    """dx[c'] = dy[c'] d[c']**-beta
              - 2 beta alpha / size x[c'] sum_{c : c' in window(c)} dy[c] x[c] d[c]**(-beta-1)."""
    dy = _f64(dy)
    x, d = cache["x"], cache["d"]
    size, alpha, beta = cache["size"], cache["alpha"], cache["beta"]
    n_batch, channels, height, width = x.shape
    dx = np.zeros_like(x)
    for n in range(n_batch):
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    dx[n, c, i, j] += dy[n, c, i, j] * d[n, c, i, j] ** (-beta)
                    common = dy[n, c, i, j] * x[n, c, i, j] * d[n, c, i, j] ** (-beta - 1)
                    for cc in _lrn_window(c, size, channels):
                        dx[n, cc, i, j] -= 2 * beta * alpha / size * x[n, cc, i, j] * common
    return dx


# ---------------------------------------------------------------------------------------------
# regularisation


def l2_regularization(weights, weight_decay):
    """loss = 0.5 * weight_decay * sum over all arrays of w**2; grads = weight_decay * w.

    grads comes back as a list for a list or tuple, as a dict (same keys) for a dict.
    """
    if isinstance(weights, dict):
        names, arrays = list(weights), [_f64(w) for w in weights.values()]
    else:
        assert isinstance(weights, (list, tuple))
        names, arrays = None, [_f64(w) for w in weights]
    total = 0.0
    for w in arrays:
        for idx in np.ndindex(w.shape):
            total += w[idx] * w[idx]
    grads = [weight_decay * w for w in arrays]
    loss = np.float64(0.5 * weight_decay * total)
    return loss, (grads if names is None else dict(zip(names, grads)))
