"""The edge contract of the ops (docs/api.md, "Edges"), pinned in every backend.

Empty batches, NaN and +-inf, NumPy scalars as hyperparameters, aliasing and memory layouts.
Each rule has a test that compares every backend with the values the rule fixes (exact arrays
where it fixes them, e.g. which cell of a max-pool window gets a NaN gradient) and, where the
rule is "what the formula gives", with the loop reference (reference/ops.py), which follows
the same rules. The repros of issue 9 (points 3-6) are kept verbatim as named tests.

Bad-input errors of the edges (losses over an empty batch, no classes, batch norm training
on one value per channel) are rows of test_errors.py, identical in every backend.
"""

from __future__ import annotations

import numpy as np
import pytest

import impls
from reference import ops as R

nan, inf = np.nan, np.inf
DTYPES = ("float32", "float64")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _w(shape, dtype, seed=1):
    return _rng(seed).standard_normal(shape).astype(dtype)


def _as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _same(a):
    """The identity layout: arrays as they are."""
    return a


# ---------------------------------------------------------------------------------------------
# one table of op calls: forward(module, x, lay) -> (outputs tuple, cache); backward name.
# ``lay`` turns every array argument into the memory layout under test (identity by default).


def _conv(M, x, lay=_same):
    y, c = M.conv2d_forward(x, lay(_w((2, x.shape[1], 3, 2), x.dtype)),
                            lay(_w((2,), x.dtype, 2)), stride=(1, 2), padding=((1, 0), (0, 1)))
    return (y,), c


def _linear(M, x, lay=_same):
    d = int(np.prod(x.shape[1:]))
    y, c = M.linear_forward(x, lay(_w((4, d), x.dtype)), lay(_w((4,), x.dtype, 2)))
    return (y,), c


def _dropout(M, x, lay=_same):
    mask = lay(_rng(3).random(x.shape) >= 0.5)
    y, c = M.dropout_forward(x, 0.5, mask=mask)
    return (y,), c


def _batchnorm(training):
    def call(M, x, lay=_same):
        ch = x.shape[1]
        args = [lay(a.astype(x.dtype)) for a in (1 + _rng(4).random(ch), _rng(5).random(ch),
                                                _rng(6).random(ch), 1 + _rng(7).random(ch))]
        y, c, rm, rv = M.batchnorm_forward(x, *args, training=training, momentum=0.125)
        return (y, rm, rv), c
    return call


def _simple(op, *args, **kwargs):
    def call(M, x, lay=_same):
        y, c = getattr(M, f"{op}_forward")(x, *args, **kwargs)
        return (y,), c
    return call


X4 = (2, 3, 5, 6)
OPS = {  # name: (forward, backward function name, x shape)
    "conv2d": (_conv, "conv2d_backward", X4),
    "max_pool2d": (_simple("max_pool2d", 2), "max_pool2d_backward", (2, 3, 6, 4)),
    "max_pool2d-overlapping-padded": (_simple("max_pool2d", 3, 1, 1), "max_pool2d_backward",
                                      X4),
    "max_pool2d-8x8": (_simple("max_pool2d", 8), "max_pool2d_backward", (2, 2, 8, 16)),
    "max_pool2d-same": (_simple("max_pool2d", 3, 2, "same"), "max_pool2d_backward", X4),
    "avg_pool2d": (_simple("avg_pool2d", 3, 2, 1, count_include_pad=False),
                   "avg_pool2d_backward", X4),
    "avg_pool2d-include-pad": (_simple("avg_pool2d", 2, 1, ((1, 0), (0, 1))),
                               "avg_pool2d_backward", X4),
    "linear": (_linear, "linear_backward", X4),
    "relu": (_simple("relu"), "relu_backward", X4),
    "sigmoid": (_simple("sigmoid"), "sigmoid_backward", X4),
    "tanh": (_simple("tanh"), "tanh_backward", X4),
    "flatten": (_simple("flatten"), "flatten_backward", X4),
    "softmax": (_simple("softmax"), "softmax_backward", (4, 5)),
    "dropout": (_dropout, "dropout_backward", X4),
    "dropout-inference": (_simple("dropout", 0.5, training=False), "dropout_backward", X4),
    "local_response_norm": (_simple("local_response_norm", 3, 0.5, 0.75, 2.0),
                            "local_response_norm_backward", (2, 4, 3, 5)),
    "batchnorm-training": (_batchnorm(True), "batchnorm_backward", X4),
    "batchnorm-training-2d": (_batchnorm(True), "batchnorm_backward", (6, 3)),
    "batchnorm-inference": (_batchnorm(False), "batchnorm_backward", X4),
}
EMPTY_OK = [name for name in OPS if not name.startswith("batchnorm-training")]


def _run(M, name, x, dy=None, lay=_same):
    """(outputs, grads, cache) of op ``name`` on x; dy defaults to a fixed random array."""
    forward, backward, _ = OPS[name]
    outputs, cache = forward(M, x, lay)
    if dy is None:
        dy = _rng(9).standard_normal(outputs[0].shape).astype(x.dtype)
    grads = _as_tuple(getattr(M, backward)(lay(dy), cache))
    return outputs, tuple(g for g in grads if g is not None), cache


def _x(name, dtype, seed=0):
    return _rng(seed).standard_normal(OPS[name][2]).astype(dtype)


def _assert_close(got, expected, dtype, what):
    """Same NaN/inf positions, finite parts to a relative 1e-10 (float64) / 1e-4 (float32)."""
    got, expected = np.asarray(got), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, what
    finite = np.isfinite(expected)
    scale = np.max(np.abs(expected[finite]), initial=1.0)
    tol = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol * scale, equal_nan=True,
                               err_msg=what)


# ---------------------------------------------------------------------------------------------
# 1. empty batch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", EMPTY_OK)
def test_empty_batch_gives_the_formula_shapes_and_zero_weight_gradients(backend, name, dtype):
    shape = (0, *OPS[name][2][1:])
    x = np.zeros(shape, dtype)
    outputs, grads, _ = _run(backend, name, x)
    ref_outputs, ref_grads, _ = _run(R, name, x.astype(np.float64))
    assert len(grads) == len(ref_grads)
    for got, want in zip(outputs + grads, ref_outputs + ref_grads):
        assert got.shape == want.shape and got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want.astype(dtype))
    assert grads[0].shape == shape  # dx: empty, x's shape
    for g in grads[1:]:  # weight and bias gradients: zeros of their shapes
        assert g.size > 0 and not g.any()


def test_empty_batch_shapes_are_the_formulas(backend):
    x = np.zeros((0, 3, 7, 6))
    y, _ = backend.conv2d_forward(x, np.ones((5, 3, 3, 2)), np.ones(5), stride=(2, 1),
                                  padding=1)
    assert y.shape == (0, 5, 4, 7)
    assert backend.max_pool2d_forward(x, 3, 2, "same")[0].shape == (0, 3, 4, 3)
    assert backend.avg_pool2d_forward(x, 2)[0].shape == (0, 3, 3, 3)
    assert backend.linear_forward(x, np.ones((4, 126)), np.ones(4))[0].shape == (0, 4)
    assert backend.flatten_forward(x)[0].shape == (0, 126)
    assert backend.flatten_forward(np.zeros(0))[0].shape == (0, 1)
    assert backend.softmax_forward(np.zeros((0, 5)))[0].shape == (0, 5)


def test_issue9_empty_batch_repros(backend):
    """Issue 9 point 3: NumPy linear/flatten raised a raw reshape ValueError, torch flatten a
    RuntimeError, softmax with K = 0 a raw NumPy error."""
    x = np.zeros((0, 2, 3, 3))
    y, cache = backend.linear_forward(x, np.ones((4, 18)), np.ones(4))
    dx, dw, db = backend.linear_backward(np.zeros((0, 4)), cache)
    assert y.shape == (0, 4) and dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros((4, 18)))
    np.testing.assert_array_equal(db, np.zeros(4))
    y, cache = backend.flatten_forward(x)
    assert y.shape == (0, 18) and backend.flatten_backward(y, cache).shape == x.shape
    with pytest.raises(ValueError, match=r"x: got shape \(2, 0\) with no classes"):
        backend.softmax_forward(np.zeros((2, 0)))


# ---------------------------------------------------------------------------------------------
# 2. non-finite values


def _plant(x: np.ndarray) -> np.ndarray:
    """x with NaN, +inf and -inf at fixed, separate places (NaN and inf in different rows)."""
    x = x.copy()
    flat = x.reshape(-1)
    flat[[1, flat.size // 2, flat.size - 3]] = nan, inf, -inf
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPS))
def test_non_finite_inputs_follow_the_reference(backend, name, dtype):
    """NaN in -> NaN out, forward and backward; +-inf follow IEEE arithmetic: same NaN and inf
    positions as the loop reference, which follows docs/api.md's rules."""
    x = _plant(_x(name, dtype))
    outputs, grads, _ = _run(backend, name, x)
    ref_outputs, ref_grads, _ = _run(R, name, x.astype(np.float64),
                                     dy=_rng(9).standard_normal(outputs[0].shape))
    assert np.isnan(outputs[0]).any(), "the planted NaN must reach the output"
    for i, (got, want) in enumerate(zip(outputs + grads, ref_outputs + ref_grads)):
        _assert_close(got, want, dtype, f"{name} output/gradient {i}")


def test_relu_nan_and_zero(backend):
    x = np.array([[nan, inf, -inf, 0.0, -0.0, -1.0, 2.0]])
    y, cache = backend.relu_forward(x)
    np.testing.assert_array_equal(y, [[nan, inf, 0, 0, 0, 0, 2]])
    dx = backend.relu_backward(np.full_like(x, 3.0), cache)
    np.testing.assert_array_equal(dx, [[nan, 3, 0, 0, 0, 0, 3]])


# relu_backward of a non-finite dy where x <= 0: the frameworks natively differ (PyTorch's
# threshold_backward selects, 0; TensorFlow's ReluGrad multiplies, dy * 0 = NaN) and neither
# can be moved to the other without writing relu's gradient by hand. Pinned as data, per
# backend, so that a change is noticed (docs/api.md, "Edges").
RELU_NON_FINITE_DY_AT_MASKED = {"numpy": nan, "torch": 0.0, "tensorflow": nan}


def test_relu_non_finite_dy_where_x_is_not_positive(backend):
    y, cache = backend.relu_forward(np.array([-1.0, 0.0, 2.0]))
    dx = backend.relu_backward(np.array([inf, nan, inf]), cache)
    want = RELU_NON_FINITE_DY_AT_MASKED[backend.__name__.split(".")[-1]]
    np.testing.assert_array_equal(dx, [want, want, inf])


def test_issue9_relu_backward_at_nan(backend):
    """Issue 9 point 4: relu_backward at NaN gave 1 in torch, 0 in NumPy/TF; now NaN."""
    for dtype in DTYPES:
        y, cache = backend.relu_forward(np.array([np.nan, 1.0], dtype))
        np.testing.assert_array_equal(backend.relu_backward(np.ones(2, dtype), cache), [nan, 1])


# (window x (1, 1, 1, k) or (1, 1, h, w), kernel, stride, padding, y, dx for dy = 1)
MAX_POOL_EDGES = [
    ("nan-wins-first-largest", [[[[1, nan, 5, 7]]]], (1, 4), None, 0, [nan], [0, nan, 0, 0]),
    ("inf-before-nan-wins", [[[[inf, nan, 1, 2]]]], (1, 4), None, 0, [nan], [nan, 0, 0, 0]),
    ("first-of-two-nans", [[[[3, nan, 9, nan]]]], (1, 4), None, 0, [nan], [0, nan, 0, 0]),
    ("row-major-2d", [[[[3, 1], [nan, nan]]]], 2, None, 0, [nan], [0, 0, nan, 0]),
    ("nan-in-overlapping-windows", [[[[1, nan, 2]]]], (1, 2), 1, 0, [nan, nan],
     [0, nan, 0]),
    ("nan-stays-in-its-channel", [[[[nan, 1]], [[2, 3]]]], (1, 2), None, 0, [nan, 3],
     [nan, 0, 0, 1]),
    ("inf-wins", [[[[1, inf, inf, 2]]]], (1, 4), None, 0, [inf], [0, 1, 0, 0]),
    ("all-minus-inf", [[[[-inf, -inf, 1, 2]]]], (1, 2), None, 0, [-inf, 2], [1, 0, 0, 1]),
    ("all-minus-inf-behind-padding", [[[[-inf, -inf, 1, 2]]]], (1, 3), (1, 2), (0, 1),
     [-inf, 2], [1, 0, 0, 1]),
    ("all-minus-inf-behind-uneven-padding", [[[[-inf, -inf, -inf, 3]]]], (1, 2), (1, 2),
     ((0, 0), (1, 0)), [-inf, -inf], [1, 1, 0, 0]),
    ("all-minus-inf-overlapping", [[[[-inf, -inf, -inf, 3]]]], (1, 3), 1, (0, 1),
     [-inf, -inf, 3, 3], [2, 0, 0, 2]),
    ("all-minus-inf-same", [[[[-inf, -inf, -inf]]]], (1, 2), 1, "same", [-inf] * 3,
     [1, 1, 1]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_POOL_EDGES, ids=[c[0] for c in MAX_POOL_EDGES])
def test_max_pool_non_finite_windows(backend, case, dtype):
    """A window holding NaN gives NaN; its winner is the first cell holding the largest value
    with NaN counted as +inf, and gets a NaN gradient; an all -inf window gives -inf and its
    gradient goes to its first real cell."""
    _, x, kernel, stride, padding, y_want, dx_want = case
    x = np.array(x, dtype)
    y, cache = backend.max_pool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(y.ravel(), y_want)
    dx = backend.max_pool2d_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx.ravel(), dx_want)
    ref_y, ref_cache = R.max_pool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(ref_y.ravel(), y_want)
    np.testing.assert_array_equal(R.max_pool2d_backward(np.ones_like(ref_y), ref_cache).ravel(),
                                  dx_want)


def test_max_pool_nan_in_a_large_window(backend):
    """The 8x8 windows (NumPy's argmax path) follow the same rule."""
    x = _rng().standard_normal((1, 2, 8, 8))
    x[0, 0, 2, 3], x[0, 0, 5, 5] = inf, nan
    y, cache = backend.max_pool2d_forward(x, 8)
    np.testing.assert_array_equal(y.ravel(), [nan, x[0, 1].max()])
    dx = backend.max_pool2d_backward(np.ones_like(y), cache)
    want = np.zeros_like(x)
    want[0, 0, 2, 3] = nan
    want[0, 1].flat[np.argmax(x[0, 1])] = 1
    np.testing.assert_array_equal(dx, want)


def test_max_pool_non_finite_dy_reaches_the_winner_only(backend):
    """dy is scattered to each window's winner: NaN or inf in dy never reaches another cell."""
    x = np.array([[[[1.0, -1.0, 3.0, 2.0]]]])
    y, cache = backend.max_pool2d_forward(x, (1, 2))
    dx = backend.max_pool2d_backward(np.array([[[[nan, inf]]]]), cache)
    np.testing.assert_array_equal(dx.ravel(), [nan, 0, inf, 0])


def test_issue9_tf_max_pool_ignores_nan(backend):
    """Issue 9 point 4: TF max pool ignored NaN ([5, 7] where NumPy/torch gave [nan, nan])."""
    x = np.array([[[[nan, nan], [5.0, 7.0]]]])
    y, _ = backend.max_pool2d_forward(x, (2, 1))
    np.testing.assert_array_equal(y.ravel(), [nan, nan])


def test_issue9_all_minus_inf_window(backend):
    """Issue 9 point 4: TF returned -FLT_MAX for an all -inf window; NumPy and TF sent the
    gradient of a padded window whose real cells are all -inf to a padded cell (lost)."""
    for dtype in DTYPES:
        x = np.full((1, 1, 2, 2), -inf, dtype)
        y, cache = backend.max_pool2d_forward(x, 3, 1, 1)
        np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), -inf))
        dx = backend.max_pool2d_backward(np.ones_like(y), cache)
        np.testing.assert_array_equal(dx, [[[[4, 0], [0, 0]]]])


SOFTMAX_ROWS = [  # (row, softmax, backward with dy = [1, 2, 3])
    ([inf, 0, 1], [nan] * 3, [nan] * 3),
    ([nan, 0, 1], [nan] * 3, [nan] * 3),
    ([inf, inf, 0], [nan] * 3, [nan] * 3),
    ([-inf, -inf, -inf], [nan] * 3, [nan] * 3),
    ([-inf, 0, 0], [0, 0.5, 0.5], [0, -0.25, 0.25]),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_non_finite_rows(backend, dtype):
    """A row holding NaN or +inf, or all -inf, is NaN in every entry; other -inf entries give
    0; rows do not mix."""
    x = np.array([r for r, _, _ in SOFTMAX_ROWS] + [[0, 0, 0]], dtype)
    y, cache = backend.softmax_forward(x)
    np.testing.assert_array_equal(y, np.array([s for _, s, _ in SOFTMAX_ROWS] + [[1 / 3] * 3],
                                              dtype))
    dx = backend.softmax_backward(np.tile(np.array([1, 2, 3], dtype), (len(x), 1)), cache)
    np.testing.assert_allclose(dx[:-1], [g for _, _, g in SOFTMAX_ROWS], rtol=0, atol=1e-7)
    np.testing.assert_allclose(dx[-1], [-1 / 3, 0, 1 / 3], rtol=0, atol=1e-7)


def test_issue9_softmax_of_inf_0_1(backend):
    """Issue 9 point 4: softmax of [inf, 0, 1] (NumPy/torch all NaN, TF reported [nan, 0, 0])."""
    y, _ = backend.softmax_forward(np.array([[inf, 0.0, 1.0]]))
    np.testing.assert_array_equal(y, [[nan, nan, nan]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["integer", "probabilities"])
@pytest.mark.parametrize("bad", [nan, inf, -inf], ids=["nan", "inf", "minus-inf"])
def test_cross_entropy_non_finite_row(backend, bad, kind, dtype):
    """A row holding any non-finite logit (even one -inf) makes the loss NaN and its own
    gradient row NaN in every entry; the other rows keep their gradient (p - t) / N."""
    logits = _rng().standard_normal((3, 4)).astype(dtype)
    logits[1, 2] = bad
    classes = np.array([0, 3, 1])
    labels = classes if kind == "integer" else np.eye(4, dtype=dtype)[classes]
    loss, dlogits = backend.softmax_cross_entropy(logits, labels)
    assert np.isnan(loss) and loss.dtype == np.dtype(dtype)
    assert np.isnan(dlogits[1]).all()
    p = np.exp(logits[[0, 2]] - logits[[0, 2]].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = (p - np.eye(4)[classes[[0, 2]]]) / 3
    np.testing.assert_allclose(dlogits[[0, 2]], want, rtol=0, atol=1e-6)
    ref_loss, ref_d = R.softmax_cross_entropy(logits, labels)
    assert np.isnan(ref_loss)
    _assert_close(dlogits, ref_d, dtype, "dlogits")


def test_dropout_masks_nan_to_nan(backend):
    """0 * NaN is NaN: a NaN dropped by the mask stays NaN (IEEE, as all frameworks do)."""
    x = np.array([[nan, inf, 1.0, nan]])
    y, cache = backend.dropout_forward(x, 0.5, mask=np.array([[0, 0, 1, 1]]))
    np.testing.assert_array_equal(y, [[nan, nan, 2, nan]])
    dx = backend.dropout_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx, [[0, 0, 2, 2]])


# ---------------------------------------------------------------------------------------------
# 3. NumPy scalars as hyperparameters


def _scalar_calls(i, f, b):
    """(name, forward, backward) with hyperparameters made by i (int), f (float), b (bool)."""
    return [
        ("conv2d", lambda M, x: M.conv2d_forward(x, _w((2, 3, 3, 3), x.dtype),
                                                 _w((2,), x.dtype), stride=(i(1), i(2)),
                                                 padding=((i(1), i(0)), (i(0), i(1)))),
         lambda M, dy, c: M.conv2d_backward(dy, c, input_grad=b(True))),
        ("max_pool2d", lambda M, x: M.max_pool2d_forward(x, i(3), i(2), i(1)),
         lambda M, dy, c: M.max_pool2d_backward(dy, c)),
        ("avg_pool2d", lambda M, x: M.avg_pool2d_forward(x, (i(2), i(3)), i(1), i(1),
                                                         count_include_pad=b(False)),
         lambda M, dy, c: M.avg_pool2d_backward(dy, c)),
        ("linear", lambda M, x: M.linear_forward(x, _w((2, 3 * 5 * 6), x.dtype),
                                                 _w((2,), x.dtype)),
         lambda M, dy, c: M.linear_backward(dy, c, input_grad=b(False))),
        ("local_response_norm",
         lambda M, x: M.local_response_norm_forward(x, i(3), f(2**-4), f(0.75), f(2.0)),
         lambda M, dy, c: M.local_response_norm_backward(dy, c)),
        ("dropout", lambda M, x: M.dropout_forward(x, f(0.25), training=b(True),
                                                   mask=_rng(3).random(x.shape) > 0.25),
         lambda M, dy, c: M.dropout_backward(dy, c)),
        ("batchnorm", lambda M, x: M.batchnorm_forward(
            x, np.ones(3, x.dtype), np.zeros(3, x.dtype), np.zeros(3, x.dtype),
            np.ones(3, x.dtype), training=b(True), momentum=f(0.125), eps=f(2**-17)),
         lambda M, dy, c: M.batchnorm_backward(dy, c)),
    ]


SCALAR_KINDS = {
    "int64-float64": (np.int64, np.float64, np.bool_),
    "int32-float32": (np.int32, np.float32, np.bool_),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kinds", list(SCALAR_KINDS))
@pytest.mark.parametrize("op", [c[0] for c in _scalar_calls(int, float, bool)])
def test_numpy_scalars_behave_like_python_numbers(backend, op, kinds, dtype):
    """The same outputs, dtypes and gradients with np.int64/np.float32/np.bool_ ... as with the
    Python numbers (all values here are exact in float32)."""
    x = _rng().standard_normal((2, 3, 5, 6)).astype(dtype)
    results = []
    for calls in (_scalar_calls(int, float, bool), _scalar_calls(*SCALAR_KINDS[kinds])):
        _, forward, backward = next(c for c in calls if c[0] == op)
        out = forward(backend, x)
        y, cache = out[0], out[1]
        grads = _as_tuple(backward(backend, np.ones_like(y), cache))
        results.append([y, *out[2:], *(g for g in grads if g is not None)])
    for python, numpy_ in zip(*results):
        assert numpy_.dtype == python.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(numpy_, python)


def test_numpy_scalar_weight_decay(backend):
    w = [np.ones((2, 2), np.float32)]
    loss, grads = backend.l2_regularization(w, np.float64(0.125))
    assert loss.dtype == grads[0].dtype == np.float32
    assert loss == backend.l2_regularization(w, 0.125)[0] == np.float32(0.25)


def test_issue9_lrn_numpy_int64_size(backend):
    """Issue 9 point 5: NumPy LRN with size=np.int64(3) returned float64 for float32 input and
    its backward then refused dy."""
    x = _rng().standard_normal((1, 4, 2, 2)).astype(np.float32)
    y, cache = backend.local_response_norm_forward(x, np.int64(3))
    assert y.dtype == np.float32
    dx = backend.local_response_norm_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx, backend.local_response_norm_backward(
        np.ones_like(y), backend.local_response_norm_forward(x, 3)[1]))


# ---------------------------------------------------------------------------------------------
# 4. aliasing and memory layouts


def _cache_arrays(cache) -> list[np.ndarray]:
    """The NumPy arrays a cache holds (the torch/TF caches hold tensors, copies of the input)."""
    found = []
    for value in vars(cache).values():
        items = value if isinstance(value, (tuple, list)) else [value]
        found.extend(v for v in items if isinstance(v, np.ndarray))
    return found


@pytest.mark.parametrize("name", list(OPS))
def test_outputs_share_no_memory(backend, name):
    """No output shares memory with an input, the cache or another output; no gradient with
    dy, the cache or another gradient."""
    x = _x(name, "float64")
    outputs, cache = OPS[name][0](backend, x)
    dy = np.ones_like(outputs[0])
    grads = tuple(g for g in _as_tuple(getattr(backend, OPS[name][1])(dy, cache))
                  if g is not None)
    held = _cache_arrays(cache)
    for i, out in enumerate(outputs):
        for other in [x, *held, *outputs[:i]]:
            assert not np.shares_memory(out, other), f"output {i}"
    for i, g in enumerate(grads):
        for other in [dy, x, *held, *outputs, *grads[:i]]:
            assert not np.shares_memory(g, other), f"gradient {i}"


@pytest.mark.parametrize("name", list(OPS))
def test_changing_outputs_changes_nothing(backend, name):
    """Writing into the outputs, dy or the gradients leaves a second backward unchanged."""
    x = _x(name, "float64")
    outputs, cache = OPS[name][0](backend, x)
    dy = _rng(9).standard_normal(outputs[0].shape)
    backward = getattr(backend, OPS[name][1])
    first = [g.copy() for g in _as_tuple(backward(dy, cache)) if g is not None]
    for out in outputs:
        out *= 0
    again = [g for g in _as_tuple(backward(dy.copy(), cache)) if g is not None]
    for g in again:
        g += 1
    dy *= 0
    for got, want in zip(_as_tuple(backward(dy + _rng(9).standard_normal(dy.shape), cache)),
                         first):
        np.testing.assert_array_equal(got, want)


def test_issue9_output_is_not_the_cache(backend):
    """Issue 9 point 6: NumPy sigmoid/tanh/softmax returned the array their cache kept
    (``y *= 0`` changed the backward); flatten returned a view of x, flatten_backward of dy."""
    x = _rng().standard_normal((2, 3))
    for op in ("sigmoid", "tanh", "softmax"):
        y, cache = getattr(backend, f"{op}_forward")(x)
        want = getattr(backend, f"{op}_backward")(np.ones_like(y), cache)
        y *= 0
        np.testing.assert_array_equal(getattr(backend, f"{op}_backward")(np.ones_like(y), cache),
                                      want)
    x4 = np.ones((2, 3, 2, 2))
    y, cache = backend.flatten_forward(x4)
    assert not np.shares_memory(y, x4)
    dy = np.ones_like(y)
    assert not np.shares_memory(backend.flatten_backward(dy, cache), dy)


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


LAYOUTS = {
    "fortran": np.asfortranarray,
    "negative-strides": lambda a: np.flip(np.flip(np.asarray(a), -1).copy(), -1)
    if np.ndim(a) else a,
    "read-only": _read_only,
    "broadcast-view": lambda a: np.broadcast_to(np.array(a), np.shape(a)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(OPS))
def test_every_layout_gives_identical_values(backend, name, layout, dtype):
    """x, dy and the weights in Fortran order, with negative strides, read-only or as
    broadcast views give exactly the values of their C-ordered copies, and are never written."""
    lay = LAYOUTS[layout]
    base = _x(name, dtype)
    if layout == "broadcast-view":  # x: a view with stride 0 along the batch
        base = x = np.broadcast_to(base[:1], base.shape)
    else:
        x = lay(base)
    before = np.array(x)
    outputs, grads, _ = _run(backend, name, x, lay=lay)
    c_outputs, c_grads, _ = _run(backend, name, np.ascontiguousarray(base))
    for got, want in zip(outputs + grads, c_outputs + c_grads):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_losses_in_every_layout_give_identical_values(backend, layout, dtype):
    """Cross-entropy (both label forms), mse and the L2 penalty: the same values in every
    layout (their sums follow the memory order unless the backend fixes it)."""
    lay = LAYOUTS[layout]
    logits = _rng().standard_normal((6, 40)).astype(dtype)
    probs = _rng(1).dirichlet(np.ones(40), size=6).astype(dtype)
    pred, target = (_rng(s).standard_normal((6, 40)).astype(dtype) for s in (2, 3))
    classes = np.arange(6) * 5
    calls = [
        lambda a: backend.softmax_cross_entropy(a(logits), classes),
        lambda a: backend.softmax_cross_entropy(a(logits), a(probs)),
        lambda a: backend.mse(a(pred), a(target)),
        lambda a: backend.l2_regularization([a(pred), a(target)], 0.125),
    ]
    for call in calls:
        got, want = call(lay), call(np.ascontiguousarray)
        assert got[0] == want[0] and got[0].dtype == np.dtype(dtype)
        for g, w in zip(_as_tuple(got[1]), _as_tuple(want[1])):
            np.testing.assert_array_equal(g, w)


def test_backends_agree_on_the_edges():
    """Every installed backend gives the very same NaN/inf positions on the planted input."""
    names = impls.available()
    if len(names) < 2:
        pytest.skip(f"only {names} installed: nothing to compare")
    for name in OPS:
        runs = [_run(impls.load(b), name, _plant(_x(name, "float64"))) for b in names]
        for outputs, grads, _ in runs[1:]:
            for got, want in zip(outputs + grads, runs[0][0] + runs[0][1]):
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
                np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=name)
