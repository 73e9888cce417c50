"""The conventions on which the frameworks differ (design.md), each pinned by a test.

Every test here is built so that it fails if a backend ignored the convention: the numbers are
chosen where the two readings of the convention give different answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.conftest import load_or_skip
from reference import ops as R


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- "same" padding -------------------------------------------------------------------------


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (8, 3, 2, (0, 1)),   # even total padding 1: the extra row goes at the bottom
    (7, 4, 2, (1, 2)),   # odd total 3: one before, two after
    (7, 3, 1, (1, 1)),   # stride 1: symmetric
    (6, 1, 3, (0, 0)),   # 1x1 kernel never pads
])
def test_same_padding_puts_the_extra_cell_bottom_right(backend, size, kernel, stride, expected):
    x = _rng().standard_normal((1, 1, size, size))
    w = _rng(1).standard_normal((1, 1, kernel, kernel))
    b = np.zeros(1)
    y_same, _ = backend.conv2d_forward(x, w, b, stride=stride, padding="same")
    y_explicit, _ = backend.conv2d_forward(x, w, b, stride=stride,
                                           padding=(expected, expected))
    np.testing.assert_allclose(y_same, y_explicit, rtol=0, atol=1e-12)
    assert y_same.shape[2:] == (-(-size // stride),) * 2
    if expected[0] != expected[1]:
        mirrored = (expected[::-1], expected[::-1])
        y_mirrored, _ = backend.conv2d_forward(x, w, b, stride=stride, padding=mirrored)
        assert np.max(np.abs(y_same - y_mirrored)) > 1e-3


def test_tensorflow_same_padding_is_tensorflows_own():
    """The TF backend hands "same" to TF itself; the shared rule must agree with it."""
    tf_backend = load_or_skip("tensorflow")
    x = _rng().standard_normal((2, 3, 8, 7))
    w = _rng(1).standard_normal((4, 3, 4, 3))
    b = _rng(2).standard_normal(4)
    for stride in (1, 2, 3):
        y_tf, _ = tf_backend.conv2d_forward(x, w, b, stride=stride, padding="same")
        y_ref, _ = R.conv2d_forward(x, w, b, stride=stride, padding="same")
        np.testing.assert_allclose(y_tf, y_ref, rtol=1e-10, atol=1e-10)
        m_tf, _ = tf_backend.max_pool2d_forward(x, 3, stride, padding="same")
        m_ref, _ = R.max_pool2d_forward(x, 3, stride, padding="same")
        np.testing.assert_allclose(m_tf, m_ref, rtol=1e-12, atol=1e-12)


# --- pooling over padding -------------------------------------------------------------------


def test_padded_cells_never_win_a_max(backend):
    x = -1.0 - _rng().uniform(size=(1, 1, 4, 4))  # all negative: a zero pad would win
    y, _ = backend.max_pool2d_forward(x, 3, 1, padding=1)
    assert y.max() < -1.0
    dx = backend.max_pool2d_backward(np.ones_like(y), _)
    assert dx.sum() == pytest.approx(y.size)  # every window's gradient lands on a real cell


def test_average_pool_count_include_pad(backend):
    x = np.ones((1, 1, 3, 3))
    y_in, _ = backend.avg_pool2d_forward(x, 3, 1, padding=1, count_include_pad=True)
    y_ex, _ = backend.avg_pool2d_forward(x, 3, 1, padding=1, count_include_pad=False)
    # corner window: 4 real cells of 9
    assert y_in[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert y_ex[0, 0, 0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(y_ex, np.ones((1, 1, 3, 3)))


def test_tensorflow_same_average_excludes_padding():
    """TensorFlow's own SAME average pooling is count_include_pad=False."""
    tf_backend = load_or_skip("tensorflow")
    import tensorflow as tf

    x = _rng().standard_normal((2, 3, 7, 6))
    native = tf.nn.avg_pool2d(tf.constant(x.transpose(0, 2, 3, 1), dtype=tf.float64),
                              3, 2, "SAME").numpy().transpose(0, 3, 1, 2)
    y_ex, _ = tf_backend.avg_pool2d_forward(x, 3, 2, "same", count_include_pad=False)
    y_in, _ = tf_backend.avg_pool2d_forward(x, 3, 2, "same", count_include_pad=True)
    np.testing.assert_allclose(y_ex, native, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(y_in - native)) > 1e-2


# --- max-pool gradient: ties and overlapping windows ----------------------------------------


def test_max_pool_tie_sends_the_gradient_to_the_first_maximum(backend):
    x = np.array([[[[0.0, 5.0], [5.0, 5.0]]]])  # three equal maxima
    y, cache = backend.max_pool2d_forward(x, 2)
    dx = backend.max_pool2d_backward(np.array([[[[3.0]]]]), cache)
    np.testing.assert_array_equal(dx, [[[[0.0, 3.0], [0.0, 0.0]]]])


def test_max_pool_overlapping_windows_accumulate(backend):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 1.0  # the maximum of every 3x3 window that covers it
    y, cache = backend.max_pool2d_forward(x, 3, 1)
    dx = backend.max_pool2d_backward(np.ones_like(y), cache)
    assert dx[0, 0, 1, 2] == 4.0  # all four 3x3 windows (stride 1, 4x4 input)
    assert dx.sum() == 4.0


# --- batch norm ---------------------------------------------------------------------------


def test_batchnorm_running_statistics_follow_pytorch(backend):
    x = _rng().standard_normal((5, 3)) * 2 + 1
    rm, rv = np.zeros(3), np.ones(3)
    _, _, new_rm, new_rv = backend.batchnorm_forward(x, np.ones(3), np.zeros(3), rm, rv,
                                                     training=True, momentum=0.1)
    # momentum is the weight of the NEW value; the running variance is the UNBIASED one
    np.testing.assert_allclose(new_rm, 0.9 * rm + 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(new_rv, 0.9 * rv + 0.1 * x.var(0, ddof=1), rtol=1e-12)
    assert np.all(rm == 0) and np.all(rv == 1), "the caller's running statistics changed"


def test_batchnorm_normalises_with_the_biased_variance(backend):
    x = _rng().standard_normal((4, 2))
    y, *_ = backend.batchnorm_forward(x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2),
                                      eps=1e-5)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_batchnorm_inference_uses_running_statistics(backend):
    x = _rng().standard_normal((4, 2, 3, 3))
    rm, rv = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    y, _, new_rm, new_rv = backend.batchnorm_forward(x, np.ones(2), np.zeros(2), rm, rv,
                                                     training=False)
    expected = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(new_rm, rm)
    np.testing.assert_array_equal(new_rv, rv)


def test_keras_batchnorm_mapping():
    """Keras: momentum = 1 - ours, same epsilon; its moving variance is the BIASED one."""
    load_or_skip("tensorflow")
    import keras

    x = _rng().standard_normal((6, 4)).astype(np.float32)
    momentum, eps = 0.125, 2.0**-10  # float32-exact: Keras casts hyperparameters to float32
    layer = keras.layers.BatchNormalization(momentum=1 - momentum, epsilon=eps)
    y_keras = np.asarray(layer(x, training=True))
    moving_mean = np.asarray(layer.moving_mean)
    moving_var = np.asarray(layer.moving_variance)
    y, _, rm, rv = R.batchnorm_forward(x, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4),
                                       training=True, momentum=momentum, eps=eps)
    np.testing.assert_allclose(y_keras, y, atol=1e-5)
    np.testing.assert_allclose(moving_mean, rm, atol=1e-6)
    biased = (1 - momentum) * 1 + momentum * x.astype(np.float64).var(0)
    np.testing.assert_allclose(moving_var, biased, atol=1e-6)
    assert np.max(np.abs(moving_var - rv)) > 1e-3  # ours (PyTorch's) uses the unbiased one
    assert keras.layers.BatchNormalization().epsilon == pytest.approx(1e-3)


# --- LRN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth_radius,bias,alpha,beta", [
    (2, 1.0, 1e-4, 0.75), (4, 1.0, 0.001 / 9, 0.75), (1, 2.0, 0.5, 0.5)])
def test_lrn_mapping_to_tensorflow(depth_radius, bias, alpha, beta):
    """tf.nn.local_response_normalization(r, bias, a, beta) == ours(2r+1, a*(2r+1), beta, bias)."""
    tf_backend = load_or_skip("tensorflow")
    import tensorflow as tf

    x = _rng().standard_normal((2, 11, 3, 4)).astype(np.float32)
    native = tf.nn.local_response_normalization(
        tf.constant(x.transpose(0, 2, 3, 1)), depth_radius=depth_radius, bias=bias,
        alpha=alpha, beta=beta).numpy().transpose(0, 3, 1, 2)
    params = tf_backend.lrn_params_from_tf(depth_radius, bias, alpha, beta)
    assert params["size"] == 2 * depth_radius + 1
    y, _ = R.local_response_norm_forward(x.astype(np.float64), **params)
    np.testing.assert_allclose(native, y, rtol=2e-6, atol=2e-6)
    back = tf_backend.lrn_params_to_tf(**params)
    assert back == pytest.approx(dict(depth_radius=depth_radius, bias=bias, alpha=alpha,
                                      beta=beta))


def test_lrn_alpha_is_divided_by_size(backend):
    x = np.zeros((1, 3, 1, 1))
    x[0, 1] = 2.0
    y, _ = backend.local_response_norm_forward(x, size=3, alpha=0.3, beta=1.0, k=1.0)
    # centre channel: 2 / (1 + 0.3 / 3 * 4) = 2 / 1.4 (alpha * 4 would give 2 / 2.2)
    assert y[0, 1, 0, 0] == pytest.approx(2 / 1.4, rel=1e-12)


def test_lrn_even_size_window_leans_backwards(backend):
    """PyTorch's window for even size: size // 2 channels before, (size - 1) // 2 after."""
    x = np.zeros((1, 4, 1, 1))
    x[0, 2] = 1.0
    y, _ = backend.local_response_norm_forward(np.ones((1, 4, 1, 1)) + x, size=2, alpha=2.0,
                                               beta=1.0, k=1.0)
    # channel 1 sees channels 0 and 1 (both 1): 1 / (1 + 2 / 2 * 2) = 1/3;
    # channel 2 sees 1 and 2: 2 / (1 + (1 + 4)) = 1/3; channel 3 sees 2 and 3: 1 / (1 + 5)
    np.testing.assert_allclose(y[0, :, 0, 0], [1 / 2, 1 / 3, 1 / 3, 1 / 6], rtol=1e-12)


# --- dropout ------------------------------------------------------------------------------


def test_dropout_is_inverted(backend):
    x = np.full((2, 5), 3.0)
    mask = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1]], dtype=np.float64)
    y, cache = backend.dropout_forward(x, 0.5, training=True, mask=mask)
    np.testing.assert_array_equal(y, x * mask * 2.0)  # scaled at train time
    np.testing.assert_array_equal(backend.dropout_backward(np.ones_like(x), cache), mask * 2.0)
    y_eval, _ = backend.dropout_forward(x, 0.5, training=False)
    np.testing.assert_array_equal(y_eval, x)  # identity at test time


def test_dropout_without_mask_drops_about_p(backend):
    x = np.ones((200, 100), dtype=np.float32)
    y, cache = backend.dropout_forward(x, 0.25, training=True,
                                       rng=np.random.default_rng(0))
    kept = y != 0
    assert y.dtype == np.float32
    assert abs(kept.mean() - 0.75) < 0.01  # 20,000 draws: sd of the fraction ~0.003
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    dx = backend.dropout_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx != 0, kept)  # the backward uses the same mask


# --- softmax cross-entropy --------------------------------------------------------------------


def test_cross_entropy_is_exact_for_large_logits(backend):
    logits = np.array([[0.0, 1000.0], [1000.0, 0.0]])
    loss, dlogits = backend.softmax_cross_entropy(logits, np.array([0, 1]))
    assert loss == 1000.0  # a clipped implementation gives ~-log(1e-7) = 16.1
    np.testing.assert_allclose(dlogits, [[-0.5, 0.5], [0.5, -0.5]], atol=1e-12)


def test_cross_entropy_integer_and_one_hot_labels_agree(backend):
    logits = _rng().standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    loss_int, d_int = backend.softmax_cross_entropy(logits, labels)
    loss_hot, d_hot = backend.softmax_cross_entropy(logits, np.eye(4)[labels])
    assert loss_int == pytest.approx(loss_hot, rel=1e-12)
    np.testing.assert_allclose(d_int, d_hot, atol=1e-12)


def test_cross_entropy_is_the_batch_mean(backend):
    logits = _rng().standard_normal((6, 3))
    labels = np.array([0, 1, 2, 2, 1, 0])
    per_example = [backend.softmax_cross_entropy(logits[i:i + 1], labels[i:i + 1])[0]
                   for i in range(6)]
    loss, dlogits = backend.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(np.mean(per_example), rel=1e-12)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(dlogits, (probs - np.eye(3)[labels]) / 6, atol=1e-12)


# --- layouts, flatten, activations ---------------------------------------------------------


def test_linear_flattens_nchw_in_c_order(backend):
    x = _rng().standard_normal((2, 3, 2, 4))  # C > 1 and H != W: NHWC order would differ
    w = _rng(1).standard_normal((5, 24))
    b = np.zeros(5)
    y, _ = backend.linear_forward(x, w, b)
    np.testing.assert_allclose(y, x.reshape(2, -1) @ w.T, rtol=1e-12)
    nhwc = x.transpose(0, 2, 3, 1).reshape(2, -1) @ w.T
    assert np.max(np.abs(y - nhwc)) > 1e-2


def test_conv_weight_layout_is_out_in_kh_kw(backend):
    x = np.zeros((1, 2, 3, 3))
    x[0, 1, 0, 2] = 1.0  # one pixel in input channel 1, top-right
    w = np.zeros((3, 2, 3, 3))
    w[2, 1, 0, 2] = 7.0  # output channel 2, input channel 1, kernel row 0, column 2
    y, _ = backend.conv2d_forward(x, w, np.zeros(3), padding="valid")
    assert y.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(y[0, :, 0, 0], [0.0, 0.0, 7.0])  # no kernel flip


def test_relu_gradient_at_zero_is_zero(backend):
    x = np.array([[-1.0, 0.0, 2.0]])
    y, cache = backend.relu_forward(x)
    np.testing.assert_array_equal(backend.relu_backward(np.ones_like(x), cache), [[0, 0, 1]])


def test_probability_labels_that_do_not_sum_to_one():
    """PyTorch and NumPy differentiate -sum(t log softmax) exactly: softmax * sum(t) - t.
    TensorFlow's fused softmax_cross_entropy_with_logits returns softmax - t, which is the
    gradient only when every row of t sums to 1."""
    logits = _rng().standard_normal((3, 4))
    t = np.full((3, 4), 0.125)  # rows sum to 0.5
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    exact, fused = (softmax * 0.5 - t) / 3, (softmax - t) / 3
    for name in ("numpy", "torch", "tensorflow"):
        backend = load_or_skip(name)
        loss, dlogits = backend.softmax_cross_entropy(logits, t)
        assert loss == pytest.approx(-(t * np.log(softmax)).sum() / 3, rel=1e-12)
        np.testing.assert_allclose(dlogits, fused if name == "tensorflow" else exact,
                                   atol=1e-12, err_msg=name)
