"""The framework bugs this suite found (reference/upstream_defects.json), each still checked.

For every row, one test runs the row's own reproducer -- the raw framework call, not the
backend -- and RECORDS whether the bug is still there: it passes while the bug is present (the
backend's workaround is then needed), and fails with "tensorflow X fixed <id>: the workaround
in <file::function> can go" once an upgrade fixes it. A second test runs the backend on the
same reproducer and asserts the right answer. A bug that needs oneDNN runs in a subprocess
with TF_ENABLE_ONEDNN_OPTS=1 (TensorFlow reads it once, at import; oneDNN is on by default
only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX, so it is off on this project's AVX2
machine), bounded in time; the heap corruption always runs alone in its own process. A bug
that only some CPUs show is skipped, with the reason and the CPU's oneDNN ISA, where the CPU
cannot show it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from parity_tests.conftest import load_or_skip

ROOT = Path(__file__).resolve().parents[1]
DEFECTS = ROOT / "reference" / "upstream_defects.json"
ROWS = json.loads(DEFECTS.read_text("utf-8"))
BY_ID = {row["id"]: row for row in ROWS}
KEYS = ("id", "framework", "versions", "op", "geometry", "reproducer", "expected", "got",
        "workaround", "upstream", "test")
TIMEOUT = 300  # seconds for one subprocess: a TensorFlow import takes 5-30 s on a busy machine


# ---------------------------------------------------------------------------------------------
# running a reproducer


def _values(text: str):
    """The last printed line of a reproducer: a Python list of numbers (nan and inf allowed)."""
    lines = [line for line in text.splitlines()
             if line.strip() and not line.startswith("onednn_verbose")]
    if not lines:
        return None
    return eval(lines[-1], {"__builtins__": {}, "nan": math.nan, "inf": math.inf})  # noqa: S307


def _start(code: str, stdin: str | None = None) -> tuple[subprocess.Popen, str | None]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", ONEDNN_VERBOSE="1",
               TF_ENABLE_ONEDNN_OPTS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    return proc, stdin


def _finish(started: tuple[subprocess.Popen, str | None], timeout: float) -> dict:
    """A started run's stdout, stderr, exit status, whether it timed out (then it is
    killed), and the oneDNN ISA it reported."""
    proc, stdin = started
    try:
        stdout, stderr = proc.communicate(stdin, timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"stdout": "", "stderr": "", "returncode": None, "timed_out": True,
                "isa": "unknown"}
    isa = re.search(r"onednn_verbose,.*?cpu,isa:([^\n]*)", stdout)
    return {"stdout": stdout, "stderr": stderr, "returncode": proc.returncode,
            "timed_out": False, "isa": isa.group(1).strip() if isa else "oneDNN not used"}


def _result(run: dict) -> dict:
    return {**run, "values": _values(run["stdout"]) if run["returncode"] == 0 else None}


def _isolated(code: str) -> dict:
    """Run ``code`` alone in a fresh interpreter with oneDNN on: its values, exit status, ..."""
    return _result(_finish(_start(code), TIMEOUT))


# Runs several codes one after another in one interpreter (each one's prints captured), so
# that the safe codes share one TensorFlow import; the heap corruption never joins one.
GROUP = """
import contextlib, io, json, sys, traceback
out = {}
for name, code in json.loads(sys.stdin.read()).items():
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, name, "exec"), {"__name__": "__reproducer__"})
        out[name] = [printed.getvalue(), None]
    except Exception:
        out[name] = [printed.getvalue(), traceback.format_exc()]
print("GROUP " + json.dumps(out))
"""


def _group(run: dict, names) -> dict:
    found = re.search(r"^GROUP (.*)$", run["stdout"], re.MULTILINE)
    results = json.loads(found.group(1)) if found else {}
    return {name: _result({**run, "stdout": results.get(name, ["", None])[0],
                           "stderr": results.get(name, [None, run["stderr"]])[1] or "",
                           "returncode": (run["returncode"] if name not in results
                                          else 0 if results[name][1] is None else 1)})
            for name in names}


@functools.cache
def _isolated_runs() -> dict:
    """Every code of ISOLATED, with oneDNN on, in three interpreters run at once: the heap
    corruption alone, the other raw reproducers together, the backend codes together (one
    TensorFlow import after another would take minutes on a busy machine)."""
    alone = ["tf-onednn-conv2d-backprop-filter-1x1-strided"]
    raw = [name for name in ONEDNN_ROWS if name not in alone]
    backend = [name for name in ISOLATED if name.startswith("BACKEND_")]
    deadline = time.monotonic() + TIMEOUT
    started = {"alone": _start(ISOLATED[alone[0]]),
               "raw": _start(GROUP, json.dumps({n: ISOLATED[n] for n in raw})),
               "backend": _start(GROUP, json.dumps({n: ISOLATED[n] for n in backend}))}
    runs = {key: _finish(proc, deadline - time.monotonic()) for key, proc in started.items()}
    return {alone[0]: _result(runs["alone"]), **_group(runs["raw"], raw),
            **_group(runs["backend"], backend)}


def _in_process(code: str):
    """Run a reproducer that needs no oneDNN here (float64, or ops TF never sends to oneDNN)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<reproducer>", "exec"), {"__name__": "__reproducer__"})  # noqa: S102
    return _values(out.getvalue())


def _fixed(row: dict) -> str:
    import tensorflow as tf

    where = row["workaround"].rsplit(": ", 1)[-1]
    return (f"tensorflow {tf.__version__} fixed {row['id']}: the workaround in {where} can go "
            f"(and its row in reference/upstream_defects.json)")


def _same(got, expected, rtol=1e-4) -> bool:
    return got is not None and np.allclose(np.asarray(got, float), np.asarray(expected, float),
                                           rtol=rtol, atol=1e-6, equal_nan=True)


@pytest.fixture(scope="module")
def tf_backend():
    return load_or_skip("tensorflow")


# The backend on the oneDNN rows' reproducers, each in its own interpreter with oneDNN on.

BACKEND_1X1 = """
import numpy as np
import impls
B, R = impls.load("tensorflow"), impls.load("numpy")
x = np.random.default_rng(0).standard_normal((32, 32, 32, 4)).transpose(0, 3, 1, 2)  # NCHW
w = np.random.default_rng(1).standard_normal((1, 1, 4, 8)).transpose(3, 2, 0, 1)
b = np.zeros(8)
errs = []
for _ in range(3):
    y, cache = B.conv2d_forward(x.astype(np.float32), w.astype(np.float32),
                                b.astype(np.float32), stride=2)
    dw = B.conv2d_backward(np.ones_like(y), cache)[1]
    y64, cache64 = R.conv2d_forward(x, w, b, stride=2)
    dw64 = R.conv2d_backward(np.ones_like(y64), cache64)[1]
    errs.append(float(np.abs(dw - dw64).max() / np.abs(dw64).max()))
print(errs)
"""

BACKEND_CIN1 = """
import numpy as np
import impls
B = impls.load("tensorflow")
x = np.arange(1, 9, dtype=np.float32).reshape(2, 1, 2, 2)  # NCHW
w = np.ones((1, 1, 1, 2), np.float32)
out = [B.conv2d_forward(x, w, np.zeros(1, np.float32), stride=(1, 3))[0].ravel().tolist(),
       B.conv2d_forward(x.transpose(0, 1, 3, 2).copy(), w.transpose(0, 1, 3, 2).copy(),
                        np.zeros(1, np.float32), stride=(3, 1))[0].ravel().tolist()]
print(out)
"""

BACKEND_EMPTY = """
import numpy as np, tensorflow as tf
import impls
from impls.tensorflow import layers
B = impls.load("tensorflow")
x = np.zeros((0, 2, 7, 6), np.float32)
w = np.ones((3, 2, 3, 3), np.float32)
y, cache = B.conv2d_forward(x, w, np.zeros(3, np.float32), stride=2, padding="same")
dx, dw, db = B.conv2d_backward(np.zeros(y.shape, np.float32), cache)
layer = layers.Conv2d(2, 3, 3, stride=2)
traced = tf.function(layer, input_signature=[tf.TensorSpec((None, 7, 6, 2), tf.float32)])
print([list(y.shape), list(dx.shape), float(np.abs(dw).sum() + np.abs(db).sum()),
       layer(tf.zeros((0, 7, 6, 2))).shape.as_list(),
       traced(tf.zeros((0, 7, 6, 2))).shape.as_list()])
"""

BACKEND_MLP_NAN = """
import numpy as np
import impls
B = impls.load("tensorflow")
model = B.build_model("mlp", (1, 8, 8), 10, seed=0, init="he_normal")
opt = B.build_optimizer("adam", model, lr=2e-3)
x = np.random.default_rng(0).random((32, 1, 8, 8)).astype(np.float32)
x[0, 0, 3, 3] = np.nan
print([float(B.train_step(model, opt, x, np.arange(32) % 10)),
       float(np.isnan(model.predict(x)[0]).all())])
"""

ONEDNN_ROWS = [row["id"] for row in ROWS if "TF_ENABLE_ONEDNN_OPTS=1" in row["reproducer"]]
ISOLATED = {**{rid: BY_ID[rid]["reproducer"] for rid in ONEDNN_ROWS},
            **{name: code for name, code in globals().items() if name.startswith("BACKEND_")}}


# ---------------------------------------------------------------------------------------------
# the table itself


def test_every_row_has_all_keys_and_its_test():
    tests = {name for name in globals() if name.startswith("test_")}
    assert len({row["id"] for row in ROWS}) == len(ROWS), "ids must be unique"
    for row in ROWS:
        assert tuple(row) == KEYS, f"{row.get('id')}: keys {tuple(row)}, expected {KEYS}"
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", row["id"]), row["id"]
        assert row["framework"] in ("tensorflow", "torch", "keras"), row["framework"]
        assert row["upstream"] is None or row["upstream"].startswith("https://"), row["id"]
        path, _, name = row["test"].partition("::")
        assert path == "parity_tests/test_upstream.py" and name in tests, row["test"]
        assert name == "test_" + row["id"].replace("-", "_"), row["test"]
        assert f"test_backend_on_{row['id'].replace('-', '_')}" in tests, row["id"]
        compile(row["reproducer"], row["id"], "exec")  # a reproducer is Python that runs
        assert "impls/" in row["workaround"], f"{row['id']}: say where the workaround is"


def test_readme_lists_every_row():
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Upstream defects", 1)[-1].split("\n## ", 1)[0]
    assert "## Upstream defects" in readme
    for row in ROWS:
        assert row["id"] in section, f"README's Upstream defects table lacks {row['id']}"


# ---------------------------------------------------------------------------------------------
# oneDNN's strided 1x1 weight gradient: heap corruption, wrong dW (uxlfoundation/oneDNN#6035)


def test_tf_onednn_conv2d_backprop_filter_1x1_strided(tf_backend):
    row = BY_ID["tf-onednn-conv2d-backprop-filter-1x1-strided"]
    # It can corrupt the heap or hang, so it runs alone; some processes compute it right
    # (seen here in about one of four), so it counts as fixed only after three right runs.
    runs = []
    for attempt in range(3):
        run = _isolated_runs()[row["id"]] if attempt == 0 else _isolated(row["reproducer"])
        runs.append(run)
        crashed = run["timed_out"] or run["returncode"] != 0
        if crashed or not (run["values"] and run["values"][0] < 1e-4):
            return  # still there: the subsampling workaround is needed
    pytest.fail(_fixed(row) + f" (relative dW errors {[r['values'][0] for r in runs]}, "
                f"oneDNN ISA {runs[0]['isa']})")


def test_backend_on_tf_onednn_conv2d_backprop_filter_1x1_strided(tf_backend):
    run = _isolated_runs()["BACKEND_1X1"]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    assert max(run["values"]) < 2e-5, run["values"]


# ---------------------------------------------------------------------------------------------
# oneDNN's float32 conv with one input channel and a strided axis of one output (defect 1)


def test_tf_onednn_conv2d_stride_w_cin1_ow1(tf_backend):
    row = BY_ID["tf-onednn-conv2d-stride-w-cin1-ow1"]
    run = _isolated_runs()[row["id"]]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    if not _same(run["values"], [3.0, 7.0, 11.0, 15.0]):
        return  # still there
    if not re.search(r"avx.?512|amx|avx10", run["isa"], re.IGNORECASE):
        pytest.skip(f"{row['id']}: right on this CPU (oneDNN ISA {run['isa']}); the audit saw "
                    "it where oneDNN is on by default (AVX512_VNNI/AMX), so this CPU cannot "
                    "tell whether it is fixed")
    pytest.fail(_fixed(row) + f" (oneDNN ISA {run['isa']})")


def test_backend_on_tf_onednn_conv2d_stride_w_cin1_ow1(tf_backend):
    run = _isolated_runs()["BACKEND_CIN1"]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    assert _same(run["values"], [[3, 7, 11, 15], [3, 7, 11, 15]], rtol=0), run["values"]


# ---------------------------------------------------------------------------------------------
# TensorFlow's CPU AvgPoolGrad miscounting SAME windows (tensorflow#48773, defect 2)


def test_tf_avgpoolgrad_same_kernel_larger_than_input(tf_backend):
    row = BY_ID["tf-avgpoolgrad-same-kernel-larger-than-input"]
    got = _in_process(row["reproducer"])  # float64: TensorFlow's own kernel, never oneDNN
    if _same(got, [5 / 6, 7 / 6, 7 / 6, 5 / 6], rtol=1e-12):
        pytest.fail(_fixed(row))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backend_on_tf_avgpoolgrad_same_kernel_larger_than_input(tf_backend, dtype):
    column = np.arange(1.0, 5.0).reshape(1, 1, 4, 1).astype(dtype)
    for x, kernel in ((column, (5, 1)), (column.transpose(0, 1, 3, 2), (1, 5))):  # H, then W
        y, cache = tf_backend.avg_pool2d_forward(x, kernel, 1, "same", count_include_pad=False)
        dx = tf_backend.avg_pool2d_backward(np.ones_like(y), cache)
        np.testing.assert_allclose(dx.ravel(), [5 / 6, 7 / 6, 7 / 6, 5 / 6],
                                   rtol=1e-6 if dtype == "float32" else 1e-12)


# ---------------------------------------------------------------------------------------------
# oneDNN's float32 conv returning its input for an empty batch


def test_tf_onednn_conv2d_empty_batch(tf_backend):
    row = BY_ID["tf-onednn-conv2d-empty-batch"]
    run = _isolated_runs()[row["id"]]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    if run["values"] == [0, 3, 2, 3]:
        pytest.fail(_fixed(row) + f" (oneDNN ISA {run['isa']})")
    assert run["values"] == [0, 7, 6, 2], run["values"]  # the bug as recorded


def test_backend_on_tf_onednn_conv2d_empty_batch(tf_backend):
    run = _isolated_runs()["BACKEND_EMPTY"]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    assert run["values"] == [[0, 3, 4, 3], [0, 2, 7, 6], 0.0, [0, 3, 2, 3], [0, 3, 2, 3]]


def test_tf_onednn_pad_conv2d_fusion_drops_batch_pad(tf_backend):
    row = BY_ID["tf-onednn-pad-conv2d-fusion-drops-batch-pad"]
    run = _isolated_runs()[row["id"]]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    if run["values"] == [3, 3, 2, 3]:
        pytest.fail(_fixed(row) + f" (oneDNN ISA {run['isa']})")
    assert run["values"] == [2, 3, 2, 3], run["values"]  # the bug as recorded


def test_backend_on_tf_onednn_pad_conv2d_fusion_drops_batch_pad(tf_backend):
    # the empty batch traced with an unknown batch size is where the backend once padded the
    # batch axis (BACKEND_EMPTY's last value)
    run = _isolated_runs()["BACKEND_EMPTY"]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    assert run["values"][-1] == [0, 3, 2, 3], run["values"]


# ---------------------------------------------------------------------------------------------
# max pooling over NaN and -inf (tensorflow#2501)


def test_tf_max_pool_skips_nan(tf_backend):
    row = BY_ID["tf-max-pool-skips-nan"]
    if _same(_in_process(row["reproducer"]), [math.nan, math.nan]):
        pytest.fail(_fixed(row))


def test_backend_on_tf_max_pool_skips_nan(tf_backend):
    x = np.array([1.0, np.nan, np.nan, 5.0]).reshape(1, 1, 1, 4)
    y, _ = tf_backend.max_pool2d_forward(x, (1, 2))
    assert np.isnan(y).all(), y


def test_tf_max_pool_all_neg_inf_window(tf_backend):
    row = BY_ID["tf-max-pool-all-neg-inf-window"]
    if _same(_in_process(row["reproducer"]), [-math.inf]):
        pytest.fail(_fixed(row))


def test_backend_on_tf_max_pool_all_neg_inf_window(tf_backend):
    for dtype in ("float32", "float64"):
        y, _ = tf_backend.max_pool2d_forward(np.full((1, 1, 1, 2), -np.inf, dtype), (1, 2))
        assert y.ravel().tolist() == [-np.inf], (dtype, y)


# ---------------------------------------------------------------------------------------------
# oneDNN's fused MatMul + BiasAdd + Relu mapping NaN to 0 inside tf.function


def test_tf_onednn_fused_matmul_bias_relu_nan(tf_backend):
    row = BY_ID["tf-onednn-fused-matmul-bias-relu-nan"]
    run = _isolated_runs()[row["id"]]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    if _same(run["values"], [math.nan]):
        pytest.fail(_fixed(row) + f" (oneDNN ISA {run['isa']})")


def test_backend_on_tf_onednn_fused_matmul_bias_relu_nan(tf_backend):
    run = _isolated_runs()["BACKEND_MLP_NAN"]
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    loss, logits_nan = run["values"]
    assert math.isnan(loss) and logits_nan == 1.0, run["values"]


# ---------------------------------------------------------------------------------------------
# PyTorch's oneDNN strided 1x1 weight gradient on channels_last tensors (oneDNN#6035 again)

BACKEND_TORCH_1X1 = """
import numpy as np
import impls
T, R = impls.load("torch"), impls.load("numpy")
rng = np.random.default_rng(0)
nhwc = rng.standard_normal((32, 32, 32, 7))
x = nhwc.transpose(0, 3, 1, 2)  # an NCHW view with channels_last strides
w = rng.standard_normal((8, 7, 1, 1))
y, cache = T.conv2d_forward(x.astype(np.float32), w.astype(np.float32),
                            np.zeros(8, np.float32), stride=2)
dw = T.conv2d_backward(np.ones_like(y), cache)[1]
y64, cache64 = R.conv2d_forward(x, w, np.zeros(8), stride=2)
dw64 = R.conv2d_backward(np.ones_like(y64), cache64)[1]
print([float(np.abs(dw - dw64).max() / np.abs(dw64).max())])
"""


def test_torch_onednn_conv2d_channels_last_1x1_strided_weight_grad():
    load_or_skip("torch")
    import torch

    row = BY_ID["torch-onednn-conv2d-channels-last-1x1-strided-weight-grad"]
    run = _result(_finish(_start(row["reproducer"]), 90))  # it can hang: bounded
    if run["timed_out"] or run["returncode"] != 0 or not run["values"][0] < 1e-4:
        return  # still there: the backend's C-contiguous copies are needed
    pytest.fail(f"torch {torch.__version__} fixed {row['id']}: the workaround in "
                f"{row['workaround'].rsplit(': ', 1)[-1]} can go (relative dW error "
                f"{run['values'][0]:.1e})")


def test_backend_on_torch_onednn_conv2d_channels_last_1x1_strided_weight_grad():
    load_or_skip("torch")
    run = _result(_finish(_start(BACKEND_TORCH_1X1), 90))
    assert not run["timed_out"] and run["returncode"] == 0, run["stderr"][-2000:]
    assert run["values"][0] < 2e-5, run["values"]
