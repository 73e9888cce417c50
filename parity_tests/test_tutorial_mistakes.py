"""The tutorials' mistakes (reference/tutorial_mistakes.py): each one reproduces what the tutorial
prints or its code gives, and the correction matches the reference and every installed backend.

The catalogue (tutorial_mistakes.CATALOGUE) and README "## The tutorials' bugs" must agree, and
every catalogue row must name a vector or a test of this file that exists.
"""

from __future__ import annotations

import builtins
import math
import re
from pathlib import Path

import numpy as np
import pytest

import impls
from parity_tests.conftest import load_or_skip
from reference import gradcheck, ops, vectors
from reference import tutorial_mistakes as tm

ROOT = Path(__file__).resolve().parents[1]
MISTAKE_VECTORS = [n for n in vectors.names() if "mistake" in vectors.load(n)]
TUTORIALS = {"000_946d3da0276e7cdf", "001_a0953f4bfa135582", "002_28b914d1e690ba9e",
             "003_6a6890ac591960e3", "004_e59cb968dc66c9f4"}


# --- vectors with a "mistake": the tutorial's code on the vector's inputs ----------------------

@pytest.mark.parametrize("name", MISTAKE_VECTORS)
def test_mistake_reproduces_what_the_tutorial_gives(name):
    vector = vectors.load(name)
    raises = vector["mistake"].get("raises")
    if raises is not None:
        with pytest.raises(getattr(builtins, raises)):
            tm.run_mistake(vector)
        return
    outputs = tm.run_mistake(vector)
    assert any("by_mistake" in check for check in vector["expected"])
    assert vectors.failures(vector, None, field="by_mistake", outputs=outputs) == []
    assert vectors.failures(vector, None, field="printed", outputs=outputs) == []
    # and the correction matters: the reference does not give what the tutorial gives
    assert vectors.failures(vector, ops, field="by_mistake") != []


@pytest.mark.parametrize("name", ["dlfs_im2col", "dlfs_im2col_can_shrink"])
@pytest.mark.parametrize("backend_name", impls.BACKENDS)
def test_im2col_vectors_on_every_backend(name, backend_name):
    """im2col vectors run through each backend's conv2d_forward (test_ops_parity skips them)."""
    vector = vectors.load(name)
    assert vectors.failures(vector, load_or_skip(backend_name)) == []


def test_im2col_can_shrink():
    """002 §9.3: 'the unrolled input is always larger': 1x1 windows at stride 2 give a quarter."""
    vector = vectors.load("dlfs_im2col_can_shrink")
    outputs = vectors.run(vector, ops)
    assert outputs["col"].size * 4 == outputs["x"].size


def test_dlfs_relu_backward_overwrites_dout(backend):
    """002 §5.2.1: the tutorial's backward returns the caller's dout, zeroed in place; no backend
    touches its dy."""
    x = np.array([[-1.0, 2.0, 0.0]])
    out, mask = tm.dlfs_relu_forward(x)
    np.testing.assert_array_equal(out, [[1.0, 2.0, 1.0]])
    dout = np.array([[5.0, 6.0, 7.0]])
    dx = tm.dlfs_relu_backward(dout, mask)
    assert dx is dout
    np.testing.assert_array_equal(dout, [[0.0, 6.0, 0.0]])
    dy = np.array([[5.0, 6.0, 7.0]])
    _, cache = backend.relu_forward(x)
    np.testing.assert_array_equal(backend.relu_backward(dy, cache), [[0.0, 6.0, 0.0]])
    np.testing.assert_array_equal(dy, [[5.0, 6.0, 7.0]])


# --- [pad:-pad] at pad 0, the stride the backward forgets ----------------------------------------

def _conv_case(pad: int) -> dict:
    """The pad-0 vector's arrays (NCHW), with dy resized for ``pad``."""
    vector = vectors.load("tutorial_conv_backward_pad0")
    inputs = vectors.build_inputs(vector)
    y, cache = ops.conv2d_forward(inputs["x"], inputs["w"], inputs["b"], 1, pad)
    dy = np.linspace(0.2, -0.3, num=y.size).reshape(y.shape)
    return {"x": inputs["x"], "w": inputs["w"], "dy": dy,
            "want": ops.conv2d_backward(dy, cache)}


def _nhwc_loop(case: dict, pad: int, stride_in_backward: bool) -> tuple[np.ndarray, ...]:
    dx, dw, db = tm.tutorial_conv_backward_nhwc(
        case["dy"].transpose(0, 2, 3, 1), case["x"].transpose(0, 2, 3, 1),
        case["w"].transpose(2, 3, 1, 0), 1, pad, stride_in_backward)
    return dx.transpose(0, 3, 1, 2), dw.transpose(3, 2, 0, 1), db.reshape(-1)


@pytest.mark.parametrize("stride_in_backward", [True, False], ids=["000-003", "004"])
def test_unpad_at_pad_0(stride_in_backward):
    """000, 003, 004 raise at pad 0 and 001 returns an empty dx; at pad 1 the same loops are
    right, so the crop alone is wrong."""
    at0 = _conv_case(0)
    with pytest.raises(ValueError, match="could not broadcast"):
        _nhwc_loop(at0, 0, stride_in_backward)
    dx, dw, db = tm.cs231n_conv_backward_naive(at0["dy"], at0["x"], at0["w"], 1, 0)
    assert dx.shape == (1, 2, 0, 0)
    np.testing.assert_allclose(dw, at0["want"][1], rtol=1e-12)
    np.testing.assert_allclose(db, at0["want"][2], rtol=1e-12)
    at1 = _conv_case(1)
    for got, want in zip(_nhwc_loop(at1, 1, stride_in_backward), at1["want"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    dx, dw, db = tm.cs231n_conv_backward_naive(at1["dy"], at1["x"], at1["w"], 1, 1)
    np.testing.assert_allclose(dx, at1["want"][0], rtol=1e-12, atol=1e-14)


def test_stride_honoured_by_000_and_003_loops():
    """The stride-2 vector's values are what 000's and 003's loop (windows at h * stride) give."""
    vector = vectors.load("tutorial_conv_backward_stride2")
    outputs = tm.MISTAKES["tutorial_conv_backward"](vectors.build_inputs(vector),
                                                     vector["params"])
    for name in ("dx", "dw", "db"):
        np.testing.assert_allclose(outputs[name], vectors.run(vector, ops)[name], rtol=1e-12,
                                   atol=1e-14)


# --- the clipped cross-entropies (item 14) --------------------------------------------------------

def test_cross_entropy_caps():
    assert tm.CAP_000 == pytest.approx(9 * math.log(10) - math.log(1.001), rel=1e-15)
    assert tm.CAP_002 == pytest.approx(7 * math.log(10), rel=1e-15)
    assert round(tm.CAP_000, 4) == 20.7223 and round(tm.CAP_002, 4) == 16.1181
    for margin in (40.0, 100.0, 1000.0):
        logits, labels = np.array([[0.0, margin]]), np.array([0])
        assert tm.cross_entropy_000(logits, labels)[0] == pytest.approx(tm.CAP_000, rel=1e-12)
        assert tm.cross_entropy_002(logits, labels)[0] == pytest.approx(tm.CAP_002, rel=1e-10)
        assert ops.softmax_cross_entropy(logits, labels)[0] == pytest.approx(margin)


def _autodiff_torch(logits, labels, tutorial):
    load_or_skip("torch")  # skips, with the reason, when PyTorch is not installed
    import torch

    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    t = torch.nn.functional.one_hot(torch.tensor(labels), logits.shape[1]).double()
    p = torch.softmax(z, dim=1)
    if tutorial == "000":
        inner = torch.clamp(p, tm.CLIP_000, 1 - tm.CLIP_000) + tm.ADD_000
    else:
        inner = p + tm.ADD_002
    (-(t * torch.log(inner)).sum() / logits.shape[0]).backward()
    return z.grad.numpy()


def _autodiff_tensorflow(logits, labels, tutorial):
    load_or_skip("tensorflow")  # skips, with the reason, when TensorFlow is not installed
    import tensorflow as tf

    z = tf.constant(logits, dtype=tf.float64)
    t = tf.one_hot(labels, logits.shape[1], dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        p = tf.nn.softmax(z, axis=1)
        if tutorial == "000":
            inner = tf.clip_by_value(p, tm.CLIP_000, 1 - tm.CLIP_000) + tm.ADD_000
        else:
            inner = p + tm.ADD_002
        loss = -tf.reduce_sum(t * tf.math.log(inner)) / logits.shape[0]
    return tape.gradient(loss, z).numpy()


@pytest.mark.parametrize("framework", ["numpy", "torch", "tensorflow"])
@pytest.mark.parametrize("tutorial", ["000", "002"])
def test_autodiff_through_the_clip(tutorial, framework):
    """Autodiff through the tutorial's loss expression: exactly 0 behind 000's clip, 4e-11
    instead of 1 behind 002's added delta; the analytic gradients (by_mistake dlogits in the
    vector) and every backend's are the true (p - t) / N."""
    vector = vectors.load(f"tutorial_cross_entropy_clip_{tutorial}")
    inputs = vectors.build_inputs(vector)
    logits, labels = inputs["logits"], inputs["labels"]
    compute = {"numpy": lambda *a: getattr(tm, f"autodiff_dlogits_{tutorial}")(*a[:2]),
               "torch": _autodiff_torch, "tensorflow": _autodiff_tensorflow}[framework]
    got = compute(logits, labels, tutorial)
    want = np.asarray(vector["autodiff_dlogits"])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0.0)
    if tutorial == "000":
        np.testing.assert_array_equal(got, 0.0)
    else:
        assert np.abs(got).max() < 1e-10
    true = np.asarray(vector["expected"][1]["value"])
    assert np.abs(true).max() == 1.0


def test_softmax_fed_as_logits_floor(backend):
    """003: probabilities fed as logits can never cost less than ln(1 + 9/e), on any backend."""
    vector = vectors.load("tutorial_softmax_fed_as_logits")
    inputs = vectors.build_inputs(vector)
    probabilities, _ = backend.softmax_forward(inputs["logits"])
    loss, _ = backend.softmax_cross_entropy(probabilities, inputs["labels"])
    by_mistake = vector["expected"][0]["by_mistake"]
    assert float(loss) == pytest.approx(by_mistake, rel=1e-12)
    certain = np.zeros((1, 10))
    certain[0, 0] = 1.0
    floor, _ = backend.softmax_cross_entropy(certain, inputs["labels"])
    assert float(floor) == pytest.approx(tm.softmax_fed_as_logits_floor(10), rel=1e-12)
    assert round(float(floor), 4) == 1.4612


# --- training-loop bookkeeping: the printed costs and accuracies ----------------------------------

def _batches(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, 3)), rng.integers(0, 3, size=n)) for n in sizes]


def test_000_epoch_cost_is_twice_the_last_batch(backend):
    """000's 'Cost after epoch' is 2 x the last minibatch loss; the mean over the epoch's
    examples is the loss of all of them at once, on every backend."""
    batches = _batches([4, 4, 2])
    losses = [float(backend.softmax_cross_entropy(z, y)[0]) for z, y in batches]
    printed = tm.adam_epoch_cost_000(losses)
    assert printed == 2 * losses[-1]
    right = tm.epoch_cost(losses, [4, 4, 2])
    whole, _ = backend.softmax_cross_entropy(np.concatenate([z for z, _ in batches]),
                                             np.concatenate([y for _, y in batches]))
    assert right == pytest.approx(float(whole), rel=1e-12)
    assert right == pytest.approx(float(ops.softmax_cross_entropy(
        np.concatenate([z for z, _ in batches]), np.concatenate([y for _, y in batches]))[0]))
    assert abs(printed - right) > 0.1


def test_004_epoch_cost_divisor(backend):
    """004: 17 minibatches (16 of 64 and one of 56) divided by int(1080 / 64) = 16."""
    assert int(1080 / 64) == 16 and math.ceil(1080 / 64) == 17 and 1080 - 16 * 64 == 56
    assert tm.dlai_epoch_cost([1.0] * 17, 1080, 64) == pytest.approx(17 / 16)
    assert tm.epoch_cost([1.0] * 17, [64] * 16 + [56]) == pytest.approx(1.0)
    # the same on a small set (10 examples, batches of 4: 4, 4, 2 divided by 2) and real losses
    batches = _batches([4, 4, 2], seed=1)
    losses = [float(backend.softmax_cross_entropy(z, y)[0]) for z, y in batches]
    whole, _ = backend.softmax_cross_entropy(np.concatenate([z for z, _ in batches]),
                                             np.concatenate([y for _, y in batches]))
    assert tm.epoch_cost(losses, [4, 4, 2]) == pytest.approx(float(whole), rel=1e-12)
    assert tm.dlai_epoch_cost(losses, 10, 4) == pytest.approx(sum(losses) / 2, rel=1e-15)


def test_003_iterations_and_batch_mean_accuracy():
    """003: 100 epochs are 76,600 iterations; the test accuracy is the mean of 157 batch
    accuracies (the last of 16 images), off the true accuracy by up to 0.0048."""
    steps = len(range(0, 49000, 64))
    assert steps == math.ceil(49000 / 64) == 766 and 100 * steps == 76_600
    correct = np.ones(10_000)
    correct[-16:] = 0.0  # the last, short batch all wrong
    assert correct.mean() == pytest.approx(0.9984)
    assert tm.batch_mean_accuracy(correct, 64) == pytest.approx(156 / 157)
    bound = 1 / 157 - 16 / 10_000
    assert abs(tm.batch_mean_accuracy(correct, 64) - correct.mean()) == pytest.approx(bound)
    assert round(bound, 4) == 0.0048
    assert tm.batch_mean_accuracy(np.ones(10_000), 64) == 1.0


# What 002 prints after its two loops (§4.4, §5.7), verbatim, and what the loops print.
PRINTED_4_4 = [
    "train acc, test acc, loss | 0.9361, 0.9374, 0.25693256148898147",
    "train acc, test acc, loss | 0.9386, 0.9376, 0.19519060413492628",
    "train acc, test acc, loss | 0.94075, 0.9406, 0.25280034505164123",
    "train acc, test acc, loss | 0.9432333333333334, 0.9413, 0.14324609003783176",
    "train acc, test acc, loss | 0.9454666666666667, 0.9427, 0.19827864727352307",
    "train acc, test acc, loss | 0.9465833333333333, 0.9435, 0.1750376927445897",
]
PRINTED_5_7 = ["train loss:0.933130708198716", "train loss:0.8530083545338488",
               "train loss:0.8060872314284586", "=====Final Test Accuracy=====",
               "test acc:0.9939", "Saved Network Parameters!"]


def test_002_print_schedules():
    """Both loops print at i = 0, 600, ..., 9600 (17 times); §5.7's loop prints only
    'train_acc test_acc'; after one SGD step from std-0.01 weights every image gets the same
    prediction, so the first line cannot read 0.9361."""
    schedule = tm.print_schedule(10_000, 60_000, 100)
    assert schedule == list(range(0, 10_000, 600)) and len(schedule) == 17
    assert len(PRINTED_4_4) != len(schedule)
    loop_line = re.compile(r"^\d\.\d+ \d\.\d+$")  # print(train_acc, test_acc)
    assert not any(loop_line.match(line) for line in PRINTED_5_7)
    first_acc = float(PRINTED_4_4[0].split("|")[1].split(",")[0])
    # The §4.4 network (784-50-10, sigmoid, softmax, weight_init_std 0.01), one SGD step of lr
    # 0.1 on a batch of 100 with its analytic gradient, then predictions for 1000 images.
    rng = np.random.RandomState(0)
    w1, w2 = 0.01 * rng.randn(784, 50), 0.01 * rng.randn(50, 10)
    b1, b2 = np.zeros(50), np.zeros(10)
    x, t = rng.rand(100, 784), np.eye(10)[rng.randint(10, size=100)]
    z1, _ = ops.sigmoid_forward(x @ w1 + b1)
    y, _ = ops.softmax_forward(z1 @ w2 + b2)
    dy = (y - t) / 100
    da1 = z1 * (1 - z1) * (dy @ w2.T)
    w1, b1 = w1 - 0.1 * x.T @ da1, b1 - 0.1 * da1.sum(axis=0)
    w2, b2 = w2 - 0.1 * z1.T @ dy, b2 - 0.1 * dy.sum(axis=0)
    test = rng.rand(1000, 784)
    z1, _ = ops.sigmoid_forward(test @ w1 + b1)
    predictions = np.argmax(z1 @ w2 + b2, axis=1)
    assert len(set(predictions.tolist())) == 1  # one class for every image: accuracy = its share
    assert first_acc > 0.9


def test_002_batch_softmax_loss_floor(backend):
    """002's softmax normalises a whole batch at once: the mean cross-entropy of a batch of 100
    is then at least ln 100 = 4.61, so its printed losses (0.14 to 0.26) cannot come from it;
    a per-row softmax (every backend) gives them easily."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, size=100)
    logits = rng.standard_normal((100, 10))
    logits[np.arange(100), labels] += 5.0  # a net that is mostly right
    t = np.eye(10)[labels]
    whole_batch = tm.dlfs_cross_entropy_error(tm.dlfs_softmax(logits), t)
    assert whole_batch >= math.log(100)
    per_row, _ = backend.softmax_cross_entropy(logits, labels)
    assert float(per_row) < 0.3  # like the printed losses
    assert float(per_row) == pytest.approx(tm.dlfs_cross_entropy_error(
        ops.softmax_forward(logits)[0], t), abs=1e-5)  # 002's delta 1e-7 aside
    printed = [float(line.rsplit(", ", 1)[1]) for line in PRINTED_4_4]
    assert max(printed) < math.log(100)


def test_002_cross_entropy_integer_labels(backend):
    """002's batch cross_entropy_error multiplies t * log(y): the integer labels §6.6 and §7.2
    pass (load_mnist without one_hot_label) do not broadcast; every backend takes them."""
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((128, 10)), rng.integers(0, 10, size=128)
    y, _ = ops.softmax_forward(logits)
    with pytest.raises(ValueError, match="broadcast"):
        tm.dlfs_cross_entropy_error(y, labels)
    loss, _ = backend.softmax_cross_entropy(logits, labels)
    one_hot, _ = backend.softmax_cross_entropy(logits, np.eye(10)[labels])
    assert float(loss) == pytest.approx(float(one_hot), rel=1e-12)
    assert float(loss) == pytest.approx(tm.dlfs_cross_entropy_error(y, np.eye(10)[labels]),
                                        abs=1e-5)


def test_002_broadcast_case3():
    a, b = np.array([[3.0, 0.0], [6.0, 5.0]]), np.array([10.0, 2.0])
    np.testing.assert_array_equal(a * b, [[30.0, 0.0], [60.0, 10.0]])
    np.testing.assert_array_equal(tm.broadcast_case3_as_printed(a, b), [[30.0, 0.0], [12.0, 10.0]])


def test_002_gradient_points_away_from_minimum():
    """∇(x0² + x1²) at (3, 4) is (6, 8): it points away from the minimum (0, 0); numpy prints it
    '[6. 8.]' (the tutorial: '[6.8.]')."""
    point = np.array([3.0, 4.0])
    grad = gradcheck.numerical_gradient(lambda v: v[0] ** 2 + v[1] ** 2, point, eps=1e-4)
    np.testing.assert_allclose(grad, [6.0, 8.0], rtol=1e-9)
    assert str(grad) == "[6. 8.]"
    assert float(np.dot(grad, -point)) == pytest.approx(-50.0)
    assert np.linalg.norm(point - 0.1 * grad) < np.linalg.norm(point)  # descent: against it
    assert np.linalg.norm(point + 0.1 * grad) > np.linalg.norm(point)


def test_003_edge_operator_sum(backend):
    """003 §3.1: the nine printed products sum to 377 (printed 328), on every backend."""
    patch = np.array([[[[200.0, 199.0, 189.0], [203.0, 23.0, 34.0], [177.0, 12.0, 22.0]]]])
    kernel = np.array([[[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]]])
    y, _ = backend.conv2d_forward(patch, kernel, np.zeros(1))
    assert float(y.ravel()[0]) == 377.0
    assert 200 + 199 + 189 - 177 - 12 - 22 == 377 != 328


# --- the catalogue and the README -----------------------------------------------------------

def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_catalogue_is_the_readme_table():
    """README "## The tutorials' bugs" holds catalogue_table() verbatim: a mistake added to one
    and not the other fails here."""
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "The tutorials' bugs")
    table = tm.catalogue_table()
    assert table in section
    readme_rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(readme_rows) == len(tm.CATALOGUE)


def test_catalogue_rows_are_checked():
    """Every row names real tests and vectors, ids are unique, tutorials exist; every vector
    recording a tutorial's mistake has a row."""
    ids = [row.id for row in tm.CATALOGUE]
    assert len(ids) == len(set(ids))
    named_vectors = set()
    for row in tm.CATALOGUE:
        assert all(t.strip() in TUTORIALS for t in row.tutorial.split(",")), row.id
        assert all(getattr(row, f).strip() for f in ("where", "prints", "right", "mistake"))
        tests = re.findall(r"\btest_\w+", row.test)
        names = [n for n in re.findall(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", row.test)
                 if not n.startswith("test_")]
        assert tests or names, row.id
        for test in tests:
            assert callable(globals().get(test)), (row.id, test)
        for name in names:
            assert name in vectors.names(), (row.id, name)
        named_vectors.update(names)
    recorded = {n for n in vectors.names()
                if "mistake" in vectors.load(n) or "printed_reproduced_with" in vectors.load(n)
                or any("printed" in c for c in vectors.load(n)["expected"])}
    assert recorded - named_vectors == set()


def test_run_mistake_refuses_a_vector_without_one():
    with pytest.raises(ValueError, match="vector: got mistake None"):
        tm.run_mistake(vectors.load("hand_mse"))


@pytest.mark.parametrize("call, error, message", [
    (lambda: tm.cross_entropy_000([[0.0, 1.0]], np.array([0])), TypeError,
     "logits: got list .*expected a float NumPy array"),
    (lambda: tm.cross_entropy_002(np.zeros((1, 2)), np.array([2])), ValueError,
     r"labels: got .*expected 1 classes in \[0, 2\)"),
    (lambda: tm.tutorial_conv_backward_nhwc(np.zeros((1, 2, 2, 3)), np.zeros((1, 3, 3, 2)),
                                            np.zeros((2, 2, 2, 4)), 1, 0), ValueError,
     "dz: got .*expected 1 images and 4 channels"),
    (lambda: tm.cs231n_conv_backward_naive(np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 3, 3)),
                                           np.zeros((1, 2, 2, 2)), 0, 0), ValueError,
     "stride: got 0, expected an integer >= 1"),
    (lambda: tm.epoch_cost([1.0, 2.0], [4]), ValueError,
     "batch_sizes: got .*expected 2 positive integers"),
    (lambda: tm.dlai_epoch_cost([1.0], 10, 64), ValueError,
     "m: got 10, expected an integer >= 64"),
    (lambda: tm.batch_mean_accuracy([0.5, 1.0], 2), ValueError, "correct: got .*expected 0/1"),
    (lambda: tm.print_schedule(10, 60, True), TypeError, "batch_size: got bool True"),
    (lambda: tm.adam_epoch_cost_000([]), ValueError, "batch_losses: got .*non-empty"),
    (lambda: tm.softmax_fed_as_logits_floor(1), ValueError, "num_classes: got 1"),
    (lambda: tm.dlfs_relu_backward(np.zeros(3), np.zeros(3)), ValueError,
     "mask: got .*expected a bool array of shape"),
    (lambda: tm.catalogue_table(["row"]), TypeError, "catalogue: got list"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_003_bias_after_relu(backend):
    """003's conv2d adds the bias after the ReLU: with a negative bias its 'activations' are
    negative; relu(conv + b), on every backend, never is."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    b = np.array([-1.0, -0.5, 0.5, 1.0])
    conv, _ = backend.conv2d_forward(x, w, np.zeros(4), 1, 1)
    relu_conv, _ = backend.relu_forward(conv)
    as_written = relu_conv + b[None, :, None, None]
    right, _ = backend.relu_forward(backend.conv2d_forward(x, w, b, 1, 1)[0])
    assert as_written.min() == pytest.approx(-1.0) and right.min() == 0.0
    assert np.abs(as_written - right).max() > 0.4
