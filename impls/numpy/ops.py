"""Every op of docs/api.md from scratch in NumPy, each with a hand-derived backward.

Windowed ops (conv, pools) share a few helpers: ``_pad`` (one copy of the input with its
border), ``_windows`` (a strided view of every window, no copy), ``_offsets`` (for each of the
kH*kW kernel offsets, the strided slice of the input it covers in every window) and
``_scatter_windows`` (the adjoint of ``_windows``: adds those slices back, so overlapping windows
accumulate). Convolution is im2col + a GEMM each for y, dW and dx, a batch slice at a time.
docs/numpy-speed.md explains each choice made for speed, with the textbook version beside it.

Masks are applied by multiplying with a boolean array (``dy * positive``), not with np.where
or masked assignment: those branch on every element, and on random masks they ran ~10x
slower here. The product differs from a select only where the gradient is inf or NaN at a
masked-out element (NaN instead of 0); max pooling, where the frameworks' scatter gives 0
there, checks dy and takes a select only when dy is not finite.

The edges (docs/api.md, "Edges"): hyperparameters are the Python numbers the checkers return
(NumPy 2 treats a Python float as "weak", float32 stays float32, but an ``np.float64`` scalar
as strong: it would silently promote float32 arrays to float64). No output shares memory with
an input, the cache or another output. Inputs of any memory layout give the same values as
their C-ordered copy: reductions whose summation order follows the memory layout (batch norm,
softmax, the losses, the bias gradients) run on ``np.ascontiguousarray`` of their input, which
is the array itself when it is C-ordered already. The rare non-finite cases of max pooling
(a NaN window, an all -inf window) are detected on the output and take a slower path; the
common path stays as fast as before.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _checks
from .._checks import Cache, Geometry


def _flat(x: np.ndarray) -> np.ndarray:
    """x (N, ...) as (N, D) in C order, D spelled out (-1 is ambiguous when N = 0); a view of x
    when x is C-ordered."""
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

# ---------------------------------------------------------------------------------------------
# window helpers (conv and pools)


def _pad(x: np.ndarray, pads: _checks.Pads, value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) with ``value`` added around H and W; x itself when there is no padding."""
    if pads == ((0, 0), (0, 0)):
        return x
    return np.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)


def _unpad(xp: np.ndarray, pads: _checks.Pads) -> np.ndarray:
    """The inverse of ``_pad``: the interior of xp (N, C, Hp, Wp)."""
    (top, bottom), (left, right) = pads
    return xp[:, :, top:xp.shape[2] - bottom, left:xp.shape[3] - right]


def _windows(xp: np.ndarray, geom: Geometry) -> np.ndarray:
    """A strided view (no copy) of every window: (..., Hp, Wp) -> (..., OH, OW, kH, kW)."""
    (sh, sw), (oh, ow) = geom.stride, geom.out
    view = sliding_window_view(xp, geom.kernel, axis=(-2, -1))  # (..., Hp-kH+1, Wp-kW+1, kH, kW)
    return view[..., : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, :]


def _offsets(geom: Geometry):
    """Yield (k, cells) for each kernel offset k = i * kW + j (row-major): xp[cells]
    (N, C, OH, OW) holds the cell at offset (i, j) of every window of xp (N, C, Hp, Wp).

    Looping over the kH*kW offsets (never over windows or pixels) keeps each step a whole-array
    operation on a strided slice.
    """
    (kh, kw), (sh, sw), (oh, ow) = geom.kernel, geom.stride, geom.out
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + (oh - 1) * sh + 1, sh), slice(j, j + (ow - 1) * sw + 1, sw)
            yield i * kw + j, (..., rows, cols)


def _window_sums(xp: np.ndarray, geom: Geometry) -> np.ndarray:
    """The sum of every window: (..., Hp, Wp) -> (..., OH, OW)."""
    total = None
    for _, cells in _offsets(geom):
        total = xp[cells].copy() if total is None else np.add(total, xp[cells], out=total)
    return total


def _disjoint(geom: Geometry) -> bool:
    """True when no two windows share a cell (stride >= kernel along both axes)."""
    return all(s >= k for s, k in zip(geom.stride, geom.kernel))


def _scatter_windows(dxp: np.ndarray, geom: Geometry, contribution) -> np.ndarray:
    """Adjoint of ``_windows``: add every window's gradient onto dxp (N, C, Hp, Wp), zeros on
    entry, and return it (col2im).

    ``contribution(k)`` is the gradient (N, C, OH, OW) reaching kernel offset k of each
    window. Within one offset no cell is hit twice, so ``+=`` is safe, and overlapping windows
    accumulate across offsets. When windows cannot overlap (stride >= kernel, the usual pool)
    every cell gets at most one contribution, and a plain assignment (half the memory traffic
    of a strided ``+=``) does the same.
    """
    disjoint = _disjoint(geom)
    for k, cells in _offsets(geom):
        if disjoint:
            dxp[cells] = contribution(k)
        else:
            dxp[cells] += contribution(k)
    return dxp


# ---------------------------------------------------------------------------------------------
# convolution

# im2col runs on slices of the batch whose cols take about this many bytes (at least one
# sample): big enough for efficient GEMMs, small enough to stay in cache instead of holding
# kH*kW copies of the whole input.
IM2COL_BYTES = 4 * 2**20


def _batch_slices(n: int, bytes_per_sample: int) -> list[slice]:
    step = max(1, IM2COL_BYTES // bytes_per_sample)
    return [slice(start, start + step) for start in range(0, n, step)]


def _im2col(xp: np.ndarray, geom: Geometry) -> np.ndarray:
    """cols (C*kH*kW, n*OH*OW) of xp (n, C, Hp, Wp): one column per output pixel, rows in
    (c, i, j) order like w.reshape(F, -1); the one copy of the windows."""
    n, c = xp.shape[:2]
    (kh, kw), (oh, ow) = geom.kernel, geom.out
    return _windows(xp, geom).transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * oh * ow)


def conv2d_forward(x, w, b, stride=1, padding=0):
    """2-D cross-correlation (no kernel flip), as im2col + GEMM.

    x (N, C, H, W), w (F, C, kH, kW), b (F,) or None (no bias) -> y (N, F, OH, OW).
    Forward:  y[n, f, p, q] = b[f] + sum_{c,i,j} w[f, c, i, j] * xp[n, c, p*sh + i, q*sw + j],
              xp = x zero-padded; as matrices Y = W @ cols with W (F, C*kH*kW) and
              cols (C*kH*kW, N*OH*OW), one column per output pixel.
    Backward: db = sum_{n,p,q} dy;  dW = dY @ cols^T;  dcols = W^T @ dY, folded back onto xp by
              col2im (overlapping windows add up), then the padding is cut off.

    How it runs fast (docs/numpy-speed.md): the padding, cols and the GEMM are done a slice of
    the batch at a time (``IM2COL_BYTES``), and the backward builds them again rather than
    keeping them: a copy that stays in cache costs less than holding cols, kH*kW times the
    input's size (a 7x7 conv: 49x), or even a padded copy of x. The cache keeps x by reference,
    as the frameworks keep their input. Within a slice the GEMMs run on C-ordered matrices (W^T
    and cols^T are transposed views BLAS reads as they are), and Y (F, n*OH*OW) is reordered to
    NCHW by the assignment into y.
    """
    geom = _checks.conv2d(x, w, b, stride, padding)
    n, f = x.shape[0], w.shape[0]
    oh, ow = geom.out
    w_mat = w.reshape(f, -1)  # (F, C*kH*kW)
    y = np.empty((n, f, oh, ow), dtype=x.dtype)
    for batch in _batch_slices(n, w_mat.shape[1] * oh * ow * x.itemsize):
        y_mat = w_mat @ _im2col(_pad(x[batch], geom.pads), geom)  # (F, n*OH*OW)
        y[batch] = y_mat.reshape(f, -1, oh, ow).transpose(1, 0, 2, 3)
    if b is not None:
        y += b[:, None, None]
    cache = Cache(op="conv2d", shape=y.shape, dtype=x.dtype, x=x, w=w, bias=b is not None,
                  geom=geom)
    return y, cache  # (N, F, OH, OW)


def conv2d_backward(dy, cache, input_grad=True):
    """Gradients of conv2d_forward: (dx (N, C, H, W), dw (F, C, kH, kW), db (F,)); db is None
    when the forward had no bias (b = None).

    ``input_grad=False`` returns dx = None and skips its GEMM and col2im: a network's first
    layer needs no input gradient (the frameworks skip it too, as the input does not require
    a gradient).
    """
    _checks.grad_output(dy, cache, "conv2d")
    input_grad = _checks.boolean("input_grad", input_grad)
    x, w, geom = cache.x, cache.w, cache.geom
    n, f, oh, ow = dy.shape
    c, kh, kw = w.shape[1:]
    w_mat = w.reshape(f, -1)  # (F, C*kH*kW)
    dw_mat = np.zeros_like(w_mat)
    dx = np.empty_like(x) if input_grad else None  # (N, C, H, W), filled slice by slice
    for batch in _batch_slices(n, w_mat.shape[1] * oh * ow * dy.itemsize):
        xp = _pad(x[batch], geom.pads)  # (n, C, Hp, Wp)
        dy_mat = dy[batch].transpose(1, 0, 2, 3).reshape(f, -1)  # (F, n*OH*OW), a copy
        # dW^T = cols @ dY^T: the same product, but BLAS runs it up to 2x faster than
        # dY @ cols^T when F is small (a skinny left operand)
        dw_mat += (_im2col(xp, geom) @ dy_mat.T).T
        if input_grad:
            dcols = (w_mat.T @ dy_mat).reshape(c, kh * kw, -1, oh, ow)  # (C, kH*kW, n, OH, OW)
            # col2im in dcols' own (C, n) order, where each offset's block is contiguous, then
            # one transposing copy of the unpadded part into dx
            dxp_t = np.zeros((c, xp.shape[0], *xp.shape[2:]), dtype=dy.dtype)  # (C, n, Hp, Wp)
            _scatter_windows(dxp_t, geom, lambda k, dcols=dcols: dcols[:, k])
            dx[batch] = _unpad(dxp_t, geom.pads).transpose(1, 0, 2, 3)
    db = np.ascontiguousarray(dy).sum(axis=(0, 2, 3)) if cache.bias else None
    return dx, dw_mat.reshape(w.shape), db


# ---------------------------------------------------------------------------------------------
# pooling

# max pooling over disjoint windows of at least this many cells: an argmax over a copy of each
# window instead of a running maximum over the kernel offsets (measured faster from 8x8 up)
ARGMAX_WINDOW_CELLS = 32
# the max-pool backward over disjoint windows of at least this many cells: one indexed
# assignment of dy to the winners instead of a pass per kernel offset (measured: 3x3 0.8x,
# 4x4 0.33x, 8x8 0.18x of the loop's time; 2x2 windows no faster)
SCATTER_WINDOW_CELLS = 9


def _window_max(xp: np.ndarray, geom: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(max, argmax) of every window of xp (N, C, Hp, Wp): the argmax is the kernel offset
    i * kW + j of the FIRST maximum in row-major order (strictly greater takes over).

    Small windows (2x2, 3x3) take a running maximum over the kH*kW kernel offsets: a few
    branch-free passes over arrays of the output's size; as k grows, the winner's offset is
    max(argmax, k * wins). Large disjoint windows (``ARGMAX_WINDOW_CELLS``, e.g. 8x8) instead
    copy each window into a row and take np.argmax along it (its first maximum is the tie
    rule): kH*kW strided passes would cost more than one copy. A window holding NaN has a
    NaN maximum either way (np.maximum and np.argmax propagate it), which is how
    max_pool2d_forward finds the rare windows that need ``_nonfinite_windows``.
    """
    size = geom.kernel[0] * geom.kernel[1]
    index_type = np.min_scalar_type(size - 1)  # uint8 up to 16x16
    if size >= ARGMAX_WINDOW_CELLS and _disjoint(geom):
        windows = _windows(xp, geom)  # (N, C, OH, OW, kH, kW), a view
        rows = windows.reshape(*windows.shape[:4], size)  # a copy, at most x's size
        argmax = rows.argmax(axis=-1)  # (N, C, OH, OW)
        # the winners gathered from the flat copy: np.take_along_axis did the same 1.4x slower
        flat = argmax.reshape(-1) + np.arange(0, rows.size, size)
        return rows.reshape(-1)[flat].reshape(argmax.shape), argmax.astype(index_type)
    offsets = _offsets(geom)
    _, first = next(offsets)
    y = xp[first].copy()  # (N, C, OH, OW), the running maximum
    argmax = np.zeros(y.shape, dtype=index_type)  # (N, C, OH, OW), offset of the winner
    for k, cells in offsets:
        candidate = xp[cells]
        np.maximum(argmax, (candidate > y) * index_type.type(k), out=argmax)
        np.maximum(y, candidate, out=y)
    return y, argmax


def _tiles_2x2(xp: np.ndarray, geom: Geometry) -> bool:
    """True when 2x2 windows with stride 2 tile the C-ordered xp exactly (no cell left over)."""
    (oh, ow) = geom.out
    return (geom.kernel == (2, 2) and geom.stride == (2, 2) and xp.size > 0
            and xp.flags.c_contiguous and xp.shape[2:] == (2 * oh, 2 * ow))


def _max_2x2(xp: np.ndarray, geom: Geometry):
    """(y, right, lower) of 2x2 windows tiling xp (N, C, 2*OH, 2*OW), row by row.

    A window's first maximum in row-major order is the first maximum of the row holding the
    larger row maximum, the upper row on a tie: so the cells are compared in pairs along W
    (``right``: the second cell of the pair is strictly greater), then the pairs' maxima
    along H (``lower``: the lower row's is strictly greater). Each comparison is one pass over
    a flat, long array; four strided (N, C, OH, OW) slices, as in ``_window_max``, iterate
    over short rows of OW floats and ran 2x slower. right (N*C*2*OH*OW,) and lower
    (N*C*OH, OW) are boolean; the winner's offset is 2 * lower + right of its row.
    """
    n, c = xp.shape[:2]
    oh, ow = geom.out
    pairs = xp.reshape(-1, 2)  # (N*C*H*OW, 2): the two cells of a window's row
    right = pairs[:, 1] > pairs[:, 0]
    rows = np.maximum(pairs[:, 0], pairs[:, 1]).reshape(-1, 2, ow)  # (N*C*OH, 2, OW)
    lower = rows[:, 1] > rows[:, 0]
    y = np.maximum(rows[:, 0], rows[:, 1])  # (N*C*OH, OW)
    return y.reshape(n, c, oh, ow), right, lower


def _argmax_2x2(right: np.ndarray, lower: np.ndarray, shape) -> np.ndarray:
    """The kernel offsets (uint8, ``shape`` (N, C, OH, OW)) of ``_max_2x2``'s winners."""
    right = right.reshape(-1, 2, shape[-1])  # (N*C*OH, 2 rows, OW)
    column = np.where(lower, right[:, 1], right[:, 0])
    return (2 * lower.astype(np.uint8) + column).reshape(shape)


def _unpool_2x2(dy: np.ndarray, right: np.ndarray, lower: np.ndarray, padded_shape,
                pads: _checks.Pads) -> np.ndarray:
    """Gradient of ``_max_2x2`` for a finite dy (N, C, OH, OW): dx, every cell written once.

    dy goes to the winning row of each window, then to the winning cell of that row; the
    loser of a pair gets g - g * win (0 for finite g), which spares a negation of the mask.
    """
    ow = dy.shape[-1]
    dy2 = dy.reshape(-1, ow)  # (N*C*OH, OW)
    rows = np.empty((dy2.shape[0], 2, ow), dtype=dy.dtype)  # the gradient of each row maximum
    np.multiply(dy2, lower, out=rows[:, 1])
    np.subtract(dy2, rows[:, 1], out=rows[:, 0])
    g = rows.reshape(-1)  # (N*C*H*OW,)
    dxp = np.empty(padded_shape, dtype=dy.dtype)
    pairs = dxp.reshape(-1, 2)
    np.multiply(g, right, out=pairs[:, 1])
    np.subtract(g, pairs[:, 1], out=pairs[:, 0])
    return _unpad(dxp, pads)


def _scatter_winners(grad: np.ndarray, argmax: np.ndarray, geom: Geometry,
                     padded_shape) -> np.ndarray:
    """dxp (N, C, Hp, Wp): zeros with grad (N, C, OH, OW) at each window's winner, for
    disjoint windows (no cell is the winner of two), by one indexed assignment.

    The winner of window (n, c, p, q) at kernel offset (i, j) = divmod(argmax, kW) is the
    flat cell ((n*C + c)*Hp + p*sh + i)*Wp + q*sw + j of dxp. The general loop over the kH*kW
    offsets (``_scatter_windows``) makes kH*kW strided passes: 64 for an 8x8 pool, 9x slower.
    """
    n, c, hp, wp = padded_shape
    (kw, (sh, sw), (oh, ow)) = geom.kernel[1], geom.stride, geom.out
    i, j = np.divmod(argmax.astype(np.intp), kw)  # (N, C, OH, OW) each
    origin = (np.arange(n * c).reshape(n, c, 1, 1) * (hp * wp)
              + (np.arange(oh) * (sh * wp))[:, None] + np.arange(ow) * sw)  # window's cell (0, 0)
    dxp = np.zeros(padded_shape, dtype=grad.dtype)
    dxp.reshape(-1)[(origin + i * wp + j).reshape(-1)] = grad.reshape(-1)
    return dxp


def _first_real_offsets(geom: Geometry) -> np.ndarray:
    """(OH, OW): the kernel offset of each window's first real (unpadded) cell, row-major."""
    kw, (sh, sw), ((top, _), (left, _)), (oh, ow) = (geom.kernel[1], geom.stride, geom.pads,
                                                     geom.out)
    i0 = np.maximum(top - sh * np.arange(oh), 0)  # (OH,) first real row of each window
    j0 = np.maximum(left - sw * np.arange(ow), 0)  # (OW,)
    return i0[:, None] * kw + j0[None, :]


def _nonfinite_windows(xp: np.ndarray, geom: Geometry, index_type: np.dtype):
    """The contract's rule where the fast path's winner is not it (docs/api.md, "Edges").

    A window holding NaN outputs NaN and its winner is the first cell holding the largest
    value with NaN counted as +inf (so a +inf before the NaN wins). A window whose real
    cells are all -inf outputs -inf and its winner is its first real cell (the fast path
    would pick its first cell, which may be padding, where the gradient is lost).
    Returns (y, argmax, nan_windows), nan_windows a boolean (N, C, OH, OW).
    """
    nan = np.isnan(xp)
    y, argmax = _window_max(np.where(nan, np.inf, xp), geom)
    argmax = argmax.astype(index_type)
    all_minus_inf = y == -np.inf
    if all_minus_inf.any():
        first = np.broadcast_to(_first_real_offsets(geom), y.shape).astype(index_type)
        argmax[all_minus_inf] = first[all_minus_inf]
    nan_windows, _ = _window_max(nan, geom)  # does the window hold a NaN?
    y[nan_windows] = np.nan
    return y, argmax, nan_windows


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max over each window; padded cells are -inf so they never win.

    x (N, C, H, W) -> y (N, C, OH, OW); stride None means stride = kernel_size.
    Forward:  y[n, c, p, q] = max_{i,j} xp[n, c, p*sh + i, q*sw + j], and the argmax (the FIRST
              maximum in row-major order within the window) is kept.
    Backward: dx[argmax of window (p, q)] += dy[p, q]; overlapping windows accumulate.
    Non-finite values (docs/api.md, "Edges"): a window holding NaN gives NaN, its winner (the
    first largest, NaN counted as +inf) a NaN gradient; a window whose real cells are all
    -inf gives -inf and its gradient goes to its first real cell.

    The fast path (``_window_max``, or ``_max_2x2`` when 2x2 windows with stride 2 tile the
    input) computes both for finite input; its output, 4x smaller than x for 2x2 windows, is
    then checked once for NaN or -inf, and only then are the windows redone by
    ``_nonfinite_windows``. The backward writes dy to the winners in two pairwise passes
    (``_unpool_2x2``) or, for other disjoint windows of ``SCATTER_WINDOW_CELLS`` or more, by
    one indexed assignment (``_scatter_winners``); otherwise by a pass per kernel offset.
    """
    geom = _checks.pool2d(x, kernel_size, stride, padding)
    xp = _pad(x, geom.pads, value=-np.inf)  # (N, C, Hp, Wp)
    winners = None  # 2x2 tiles: (right, lower), the winner's place, instead of an argmax
    if _tiles_2x2(xp, geom):
        y, *winners = _max_2x2(xp, geom)
        argmax = None
    else:
        y, argmax = _window_max(xp, geom)  # (N, C, OH, OW) each
    nan_windows = None
    if y.size and not y.min() > -np.inf:  # min is NaN if any NaN (np.min propagates it)
        index_type = np.min_scalar_type(geom.kernel[0] * geom.kernel[1] - 1)
        y, argmax, nan_windows = _nonfinite_windows(xp, geom, index_type)
        winners = None
        if not nan_windows.any():
            nan_windows = None
    cache = Cache(op="max_pool2d", shape=y.shape, dtype=x.dtype, argmax=argmax, geom=geom,
                  padded_shape=xp.shape, nan_windows=nan_windows, winners=winners)
    return y, cache  # (N, C, OH, OW)


def max_pool2d_backward(dy, cache):
    """Gradient of max_pool2d_forward: dx (N, C, H, W)."""
    _checks.grad_output(dy, cache, "max_pool2d")
    geom, padded_shape = cache.geom, cache.padded_shape
    if cache.winners is not None:  # 2x2 tiles (the forward found no NaN and no -inf window)
        if np.isfinite(dy.sum()):
            return _unpool_2x2(dy, *cache.winners, padded_shape, geom.pads)
        argmax = _argmax_2x2(*cache.winners, dy.shape)
    else:
        argmax = cache.argmax
    # A NaN window's winner gets NaN; a non-finite dy reaches its winner only, as the
    # frameworks' scatter does.
    grad = dy if cache.nan_windows is None else np.where(cache.nan_windows, np.nan, dy)
    if _disjoint(geom) and geom.kernel[0] * geom.kernel[1] >= SCATTER_WINDOW_CELLS:
        return _unpad(_scatter_winners(grad, argmax, geom, padded_shape), geom.pads)
    if grad is dy and np.isfinite(dy.sum()):
        def contribution(k):
            # One-hot per offset: the windows whose winner sits at offset k pass dy on.
            return dy * (argmax == k)
    else:
        # a product with the one-hot mask would put a non-finite value everywhere: a select,
        # whose branches cost nothing in this rare case
        def contribution(k):
            return np.where(argmax == k, grad, 0)

    dxp = _scatter_windows(np.zeros(padded_shape, dy.dtype), geom, contribution)
    return _unpad(dxp, geom.pads)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over each window; zero padding.

    x (N, C, H, W) -> y (N, C, OH, OW); stride None means stride = kernel_size.
    Forward:  y[n, c, p, q] = sum_{i,j} xp[n, c, p*sh + i, q*sw + j] / count[p, q], where count
              is kH*kW (count_include_pad=True) or the number of real, unpadded cells of the
              window (False; TensorFlow's SAME average).
    Backward: every cell of window (p, q) gets dy[p, q] / count[p, q]; overlaps accumulate.
    """
    geom = _checks.pool2d(x, kernel_size, stride, padding)
    include_pad = _checks.count_include_pad(count_include_pad)
    xp = _pad(x, geom.pads)  # (N, C, Hp, Wp)
    if include_pad:
        count = geom.kernel[0] * geom.kernel[1]
    else:
        real_cells = _pad(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), geom.pads)
        count = _window_sums(real_cells, geom)  # (1, 1, OH, OW)
    y = _window_sums(xp, geom)
    y /= count
    cache = Cache(op="avg_pool2d", shape=y.shape, dtype=x.dtype, count=count, geom=geom,
                  padded_shape=xp.shape)
    return y, cache  # (N, C, OH, OW)


def avg_pool2d_backward(dy, cache):
    """Gradient of avg_pool2d_forward: dx (N, C, H, W)."""
    _checks.grad_output(dy, cache, "avg_pool2d")
    share = dy / cache.count  # (N, C, OH, OW), the same for every cell of a window
    dxp = _scatter_windows(np.zeros(cache.padded_shape, dy.dtype), cache.geom, lambda k: share)
    return _unpad(dxp, cache.geom.pads)


# ---------------------------------------------------------------------------------------------
# dense layers and activations


def linear_forward(x, w, b):
    """Fully connected layer on x flattened in C order.

    x (N, ...) -> (N, D), w (out, D), b (out,) -> y (N, out).
    Forward:  y = x w^T + b.
    Backward: dx = dy w (reshaped to x's shape), dw = dy^T x, db = sum_n dy.
    """
    _checks.linear(x, w, b)
    x2 = _flat(x)  # (N, D)
    y = x2 @ w.T  # w.T is a transposed view: BLAS reads it as it is
    y += b
    cache = Cache(op="linear", shape=y.shape, dtype=x.dtype, x2=x2, w=w, x_shape=x.shape)
    return y, cache  # (N, out)


def linear_backward(dy, cache, input_grad=True):
    """Gradients of linear_forward: (dx (N, ...), dw (out, D), db (out,)).

    ``input_grad=False`` returns dx = None and skips its GEMM (a network's first layer).
    """
    _checks.grad_output(dy, cache, "linear")
    input_grad = _checks.boolean("input_grad", input_grad)
    dx = (dy @ cache.w).reshape(cache.x_shape) if input_grad else None
    # a C-ordered dy: its column sums then run in one order whatever the caller's layout
    return dx, dy.T @ cache.x2, np.ascontiguousarray(dy).sum(axis=0)


def relu_forward(x):
    """Rectified linear unit, any shape.

    Forward:  y = max(x, 0); NaN stays NaN.
    Backward: dx = dy where x > 0, else 0 (0 at exactly x = 0, like both frameworks), and NaN
              where x is NaN (docs/api.md, "Edges").

    The mask is boolean; only when y holds a NaN (found by one reduction of y, which is NaN
    exactly then) does it become a float mask with NaN at the NaN inputs.
    """
    _checks.elementwise(x)
    y = np.maximum(x, 0)
    positive = x > 0
    if y.size and np.isnan(y.max()):
        positive = np.where(np.isnan(x), np.nan, positive).astype(x.dtype)
    return y, Cache(op="relu", shape=y.shape, dtype=x.dtype, positive=positive)


def relu_backward(dy, cache):
    """Gradient of relu_forward: dx, shaped like x."""
    _checks.grad_output(dy, cache, "relu")
    return dy * cache.positive


def sigmoid_forward(x):
    """Logistic sigmoid, any shape.

    Forward:  y = 1 / (1 + exp(-x)), computed as exp(-log(1 + exp(-x))) with logaddexp, which
              neither overflows nor warns for large |x|.
    Backward: dx = dy * y * (1 - y).
    """
    _checks.elementwise(x)
    y = np.exp(-np.logaddexp(0, -x))
    # the cache keeps its own copy: a caller changing y must not change the backward
    return y, Cache(op="sigmoid", shape=y.shape, dtype=x.dtype, y=y.copy())


def sigmoid_backward(dy, cache):
    """Gradient of sigmoid_forward: dx, shaped like x."""
    _checks.grad_output(dy, cache, "sigmoid")
    return dy * cache.y * (1 - cache.y)


def tanh_forward(x):
    """Hyperbolic tangent, any shape.

    Forward:  y = tanh(x).
    Backward: dx = dy * (1 - y^2).
    """
    _checks.elementwise(x)
    y = np.tanh(x)
    return y, Cache(op="tanh", shape=y.shape, dtype=x.dtype, y=y.copy())  # copy: see sigmoid


def tanh_backward(dy, cache):
    """Gradient of tanh_forward: dx, shaped like x."""
    _checks.grad_output(dy, cache, "tanh")
    return dy * (1 - cache.y * cache.y)


def flatten_forward(x):
    """Flatten all but the first axis in C order (NCHW flatten).

    x (N, ...) -> y (N, D).  Backward: dx = dy reshaped to x's shape.
    """
    _checks.flatten(x)
    y = _flat(x)
    if np.may_share_memory(y, x):  # a view (x C-ordered): the output must not alias x
        y = y.copy()
    return y, Cache(op="flatten", shape=y.shape, dtype=x.dtype, x_shape=x.shape)


def flatten_backward(dy, cache):
    """Gradient of flatten_forward: dx (N, ...)."""
    _checks.grad_output(dy, cache, "flatten")
    dx = dy.reshape(cache.x_shape)
    return dx.copy() if np.may_share_memory(dx, dy) else dx  # never a view of dy


# ---------------------------------------------------------------------------------------------
# softmax and losses


def _shift_by_row_max(x: np.ndarray) -> np.ndarray:
    """x - max of its row: exp of it cannot overflow and the largest entry becomes exp(0)."""
    return x - x.max(axis=1, keepdims=True)  # (N, K)


def softmax_forward(x):
    """Softmax along axis 1, stable.

    x (N, K) -> y (N, K).
    Forward:  y = exp(x - max) / sum_k exp(x - max).
    Backward: dx = y * (dy - sum_k dy * y).
    """
    _checks.softmax(x)
    e = np.exp(_shift_by_row_max(np.ascontiguousarray(x)))  # row sums in one order
    y = e / e.sum(axis=1, keepdims=True)
    return y, Cache(op="softmax", shape=y.shape, dtype=x.dtype, y=y.copy())  # copy: see sigmoid


def softmax_backward(dy, cache):
    """Gradient of softmax_forward: dx (N, K)."""
    _checks.grad_output(dy, cache, "softmax")
    y = cache.y
    return y * (dy - (np.ascontiguousarray(dy) * y).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy over the batch, through log-softmax.

    logits (N, K); labels int (N,) classes or float (N, K) probabilities -> (loss, dlogits).
    Forward:  log p = z - log sum_k exp(z), z = logits - row max;
              loss = -sum_{n,k} t[n, k] log p[n, k] / N, t the one-hot labels or probabilities.
              No clipping, so a margin of 1000 gives a loss of exactly 1000.
    Gradient: dlogits = (p sum_k t[n, k] - t) / N, i.e. (p - t) / N when rows of t sum to 1
              (the factor keeps it exact when probabilities sum to 1 only up to rounding).
    """
    kind = _checks.softmax_cross_entropy(logits, labels)
    logits = np.ascontiguousarray(logits)  # row sums in one order, whatever the layout
    n = logits.shape[0]
    if kind == "integer":
        target = np.zeros_like(logits)  # (N, K)
        target[np.arange(n), labels] = 1
    else:
        target = np.ascontiguousarray(labels)
    finite_rows = np.isfinite(logits).all(axis=1)  # (N,)
    if not finite_rows.all():
        # docs/api.md, "Edges": a row with a non-finite logit (even one -inf, which the
        # frameworks' log-softmax would treat as a masked class) is NaN in its loss term and
        # in every entry of its gradient
        logits = logits * np.where(finite_rows, 1, np.nan).astype(logits.dtype)[:, None]
    z = _shift_by_row_max(logits)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (N, K)
    loss = -(target * log_p).sum() / n
    return logits.dtype.type(loss), (np.exp(log_p) * target.sum(axis=1, keepdims=True)
                                     - target) / n


def mse(pred, target):
    """Mean squared error over ALL elements (PyTorch's MSELoss), any shape.

    Forward:  loss = sum (pred - target)^2 / size.
    Gradient: dpred = 2 (pred - target) / size.
    """
    _checks.mse(pred, target)
    diff = np.ascontiguousarray(pred - target)  # the mean sums in one order
    return pred.dtype.type((diff * diff).mean()), 2 * diff / diff.size


# ---------------------------------------------------------------------------------------------
# normalisation and regularisation


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1,
                      eps=1e-5):
    """Batch normalisation with PyTorch's conventions, per feature or per channel.

    x (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var (C,). Statistics run over
    the axes other than 1, n values per channel.
    Forward:  xhat = (x - mean) / sqrt(var + eps), y = gamma * xhat + beta. Training: mean and
              biased var of the batch; new_running_mean = (1 - momentum) running_mean +
              momentum mean, new_running_var = (1 - momentum) running_var + momentum var
              n / (n - 1). Inference: the running statistics, returned unchanged (copies).
    Backward: dbeta = sum dy, dgamma = sum dy * xhat; training
              dx = gamma / sqrt(var + eps) / n * (n dy - dbeta - xhat dgamma),
              inference dx = gamma / sqrt(var + eps) * dy (the statistics are constants).
    Returns (y, cache, new_running_mean, new_running_var).
    """
    training, momentum, eps = _checks.batchnorm(x, gamma, beta, running_mean, running_var,
                                                training, momentum, eps)
    x = np.ascontiguousarray(x)  # the statistics sum in one order, whatever x's layout
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)  # broadcasts (C,) against x
    n = x.size // x.shape[1]
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)  # (C,), biased variance
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.copy(), running_var.copy()
    inv_std = 1 / np.sqrt(var + eps)  # (C,)
    xhat = (x - mean.reshape(per_channel)) * inv_std.reshape(per_channel)
    y = gamma.reshape(per_channel) * xhat + beta.reshape(per_channel)
    cache = Cache(op="batchnorm", shape=y.shape, dtype=x.dtype, xhat=xhat, gamma=gamma,
                  inv_std=inv_std, training=training, axes=axes, per_channel=per_channel)
    return y, cache, new_mean, new_var


def batchnorm_backward(dy, cache):
    """Gradients of batchnorm_forward: (dx like x, dgamma (C,), dbeta (C,))."""
    _checks.grad_output(dy, cache, "batchnorm")
    dy = np.ascontiguousarray(dy)  # the sums run in one order, whatever dy's layout
    xhat, axes, per_channel = cache.xhat, cache.axes, cache.per_channel
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = (cache.gamma * cache.inv_std).reshape(per_channel)
    if not cache.training:
        return scale * dy, dgamma, dbeta
    n = dy.size // dy.shape[1]
    dx = scale / n * (n * dy - dbeta.reshape(per_channel) - xhat * dgamma.reshape(per_channel))
    return dx, dgamma, dbeta


def dropout_forward(x, p, training=True, mask=None, rng=None):
    """Inverted dropout, any shape.

    Forward:  training y = x * mask / (1 - p), mask 1 keeps a unit; when no mask is given it is
              drawn as rng.random(x.shape) >= p (rng a np.random.Generator, default a fresh
              one); inference y = x.
    Backward: dx = dy * mask / (1 - p) in training, dx = dy in inference.
    """
    p, training = _checks.dropout(x, p, training, mask)
    if not training:
        return x.copy(), Cache(op="dropout", shape=x.shape, dtype=x.dtype, mask=None, scale=None)
    if mask is None:
        rng = np.random.default_rng() if rng is None else rng
        mask = rng.random(x.shape) >= p
    # The kept units' scale is built once in x's dtype, as the frameworks do.
    scale = mask.astype(x.dtype) / (1 - p)
    y = x * scale
    return y, Cache(op="dropout", shape=y.shape, dtype=x.dtype, mask=mask, scale=scale)


def dropout_backward(dy, cache):
    """Gradient of dropout_forward: dx, shaped like x."""
    _checks.grad_output(dy, cache, "dropout")
    return dy.copy() if cache.scale is None else dy * cache.scale


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """s[:, c] = sum_{c' = c - before}^{c + after} a[:, c'] of a (N, C, H, W), zero outside.

    A loop over the window's before + after + 1 channel shifts, each one whole-array add of
    contiguous blocks (a reduction over a strided window axis would walk memory C*H*W apart).
    """
    c = a.shape[1]
    ap = np.pad(a, ((0, 0), (before, after), (0, 0), (0, 0)))  # (N, C+before+after, H, W)
    s = ap[:, :c].copy()
    for shift in range(1, before + after + 1):
        s += ap[:, shift:shift + c]
    return s  # (N, C, H, W)


def local_response_norm_forward(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels, PyTorch's definition.

    x (N, C, H, W) -> y (N, C, H, W); window W(c) = [c - size//2, c + (size-1)//2], zero
    outside [0, C).
    Forward:  d_c = k + alpha / size * sum_{j in W(c)} x_j^2,  y_c = x_c * d_c^-beta.
    Backward: dx_j = dy_j d_j^-beta
                     - 2 beta alpha / size * x_j * sum_{c : j in W(c)} dy_c x_c d_c^(-beta-1),
              where c ranges over [j - (size-1)//2, j + size//2] (the window mirrored).
    """
    size, alpha, beta, k = _checks.local_response_norm(x, size, alpha, beta, k)
    d = k + alpha / size * _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    d_pow = d ** -beta  # kept: the backward's d^(-beta-1) is d_pow / d, no second power
    y = x * d_pow
    cache = Cache(op="local_response_norm", shape=y.shape, dtype=x.dtype, x=x, d=d, d_pow=d_pow,
                  size=size, alpha=alpha, beta=beta)
    return y, cache  # (N, C, H, W)


def local_response_norm_backward(dy, cache):
    """Gradient of local_response_norm_forward: dx (N, C, H, W)."""
    _checks.grad_output(dy, cache, "local_response_norm")
    x, d, d_pow, size = cache.x, cache.d, cache.d_pow, cache.size
    alpha, beta = cache.alpha, cache.beta
    through_d = _channel_window_sum(dy * x * d_pow / d, (size - 1) // 2, size // 2)
    return dy * d_pow - (2 * beta * alpha / size) * x * through_d


def l2_regularization(weights, weight_decay):
    """L2 penalty on a list, tuple or dict of arrays.

    Forward:  loss = 0.5 * weight_decay * sum_w sum(w^2), a NumPy scalar of the weights' dtype.
    Gradient: grads = weight_decay * w for each w, as a list (list/tuple in) or dict (dict in).
    """
    arrays, weight_decay = _checks.l2_regularization(weights, weight_decay)
    dtype = arrays[0].dtype if arrays else np.dtype(np.float64)
    # C-ordered copies where needed: each sum of squares then runs in one order
    squares = sum((np.sum(np.square(np.ascontiguousarray(w))) for w in arrays), dtype.type(0))
    loss = dtype.type(0.5 * weight_decay * squares)
    grads = [weight_decay * w for w in arrays]
    if isinstance(weights, dict):
        return loss, dict(zip(weights, grads, strict=True))
    return loss, grads
