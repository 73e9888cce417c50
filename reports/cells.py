"""What one cell measures, in its own process: ``python -m reports cell SPEC.json OUT.json``.

A cell imports exactly one framework (PyTorch and TensorFlow in one process fight over their
thread pools), sets the same thread count for it as for every other framework, measures, and
writes its record (docs/results.md) to OUT.json atomically. Specs:

- ``{"kind": "train", "framework", "model", "dataset", "seed", "epochs", "optimizer", "lr",
  "batch_size", "dtype", ...}``: ``reports.training`` trains the model on the run's batches
  from the seed's canonical weights, timing every step; the final weights go to
  ``spec["weights_path"]`` (a .npz) when given.
- ``{"kind": "ops", "framework", "preset"}``: ``reports.opbench`` op timings.
- ``{"kind": "step", "framework", "model", "input_shape", "num_classes", "batch_size",
  "dtype", "optimizer", "lr", "warmup", "repeats", "threads", "gemm_size"}``: the benchmark
  (``python -m reports bench``): training-step and inference latency on one synthetic batch,
  the step's peak memory and FLOP rate, and the framework's own GEMM rate.

Fault injection, for testing the runner's robustness: a cell whose id matches one of the
comma-separated glob patterns in ``$CNN_ROSETTA_FAIL_CELLS`` raises before measuring.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .environment import environment, keep_freed_memory
from .io import save_npz_atomic, write_json_atomic
from .loadwatch import CpuWatch
from .runspec import TRAINING_DEFAULTS, plain_name

ROW_FIELDS = ("cell", "kind", "framework", "model", "dataset", "seed", "op", "size",
              "direction", "epoch", "step", "metric", "value", "unit", "parallel")
FAIL_VARIABLE = "CNN_ROSETTA_FAIL_CELLS"
WARMUP_STEPS = 3  # training steps left out of the latency and throughput figures
INFERENCE_REPEATS = 10
SPEC_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {**{k: TRAINING_DEFAULTS[k] for k in ("seed", "epochs", "optimizer", "lr",
                                                   "batch_size", "dtype")},
              "init": None, "data_dir": None, "dataset_options": {},
              "shared_masks": True, "warmup_steps": WARMUP_STEPS},
    "ops": {"preset": "quick", "dtype": "float32"},
    # sgd: the cheapest update, so that the step measures the network
    "step": {"seed": 0, "batch_size": 100, "dtype": "float32", "optimizer": "sgd", "lr": 0.01,
             "warmup": 5, "repeats": 30, "gemm_size": 2048},
}
# Each model's input (C, H, W) and class count in the tutorial it comes from (the comments in
# reference/models.py name them): the step cells run each model at this size.
TUTORIAL_INPUTS: dict[str, tuple[tuple[int, int, int], int]] = {
    # "Deep Learning from Scratch": SimpleConvNet, DeepConvNet and MultiLayerNet(Extend) on
    # MNIST, loaded as (1, 28, 28), 10 digits
    "simple_cnn": ((1, 28, 28), 10),
    "deep_cnn": ((1, 28, 28), 10),
    "mlp": ((1, 28, 28), 10),
    # cs231n assignment 2: ThreeLayerConvNet on CIFAR-10, (3, 32, 32), 10 classes
    "three_layer_cnn": ((3, 32, 32), 10),
    # deeplearning.ai course 4 week 1: the SIGNS images, 64x64 RGB, 6 signs
    "signs_cnn": ((3, 64, 64), 6),
    # the NumPy-from-scratch SIGNS CNN: the same images
    "signs_scratch_cnn": ((3, 64, 64), 6),
    # the TensorFlow CIFAR-10 network as the project's tutorial feeds it: whole CIFAR-10 images
    # (its placeholder is [None, 32, 32, 3]); TensorFlow's own cifar10 example crops to 24x24
    "cifar_lrn_cnn": ((3, 32, 32), 10),
}
GEMM_REPEATS = 5  # timed matmuls of the GEMM rate, after one warm-up


def cell_id(spec: dict[str, Any]) -> str:
    """``train-<framework>-<model>-<dataset>-seed<seed>``, ``ops-<framework>`` or
    ``step-<framework>-<model>``: the file name of the cell's record, so a spec whose names
    would make it a path ('../x') raises ValueError."""
    if spec["kind"] == "ops":
        cid = f"ops-{spec['framework']}"
    elif spec["kind"] == "step":
        cid = f"step-{spec['framework']}-{spec['model']}"
        if spec.get("round") is not None:  # the bench's interleaved rounds (reports/bench.py)
            cid += f"-r{spec['round']}"
    else:
        cid = f"train-{spec['framework']}-{spec['model']}-{spec['dataset']}-seed{spec['seed']}"
    return plain_name("cell id", cid)


def make_row(cell: str, metric: str, value: float, unit: str, **fields: Any) -> dict[str, Any]:
    """A tidy row with every field of ROW_FIELDS (absent ones None)."""
    row = {**dict.fromkeys(ROW_FIELDS), "parallel": False}
    row.update(cell=cell, metric=metric, value=value, unit=unit, **fields)
    return row


def record(spec: dict[str, Any], status: str, *, error: str | None = None,
           note: str | None = None, rows: list | None = None, seconds: float = 0.0,
           **extra: Any) -> dict[str, Any]:
    """A cell record as docs/results.md describes it."""
    return {"cell_id": safe_cell_id(spec), "spec": spec, "status": status, "error": error,
            "note": note, "parallel": False, "seconds": seconds, "rows": rows or [], **extra}


def safe_cell_id(spec: dict[str, Any]) -> str:
    """``cell_id(spec)``, or "invalid-spec" for a spec that lacks what an id needs."""
    try:
        return cell_id(with_defaults(spec))
    except (KeyError, ValueError, TypeError):
        return "invalid-spec"


# ---------------------------------------------------------------------------------------------
# threads


def configure_threads(framework: str, threads: int) -> dict[str, Any]:
    """Give ``framework`` ``threads`` compute threads, and BLAS (NumPy) as many.

    Inter-op parallelism (independent ops side by side) is set to 1 in PyTorch and
    TensorFlow alike, so that ``threads`` bounds the cores a step may use in every framework.
    Must run before the framework does any work (its pools are sized on first use).
    """
    settings: dict[str, Any] = {"threads": threads, "interop_threads": 1}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the env variables the runner sets still size the BLAS pool
        settings["blas_limited"] = False
    else:
        threadpool_limits(threads)
        settings["blas_limited"] = True
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    elif framework == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    return settings


# ---------------------------------------------------------------------------------------------
# train cells


def _percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1e3, q))


def timed(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def inference_latency(model: Any, x: np.ndarray, repeats: int = INFERENCE_REPEATS) -> float:
    """Median time (ms) of ``model.predict`` on the batch ``x``, after one warm-up call."""
    seconds = timed(lambda: model.predict(x, batch_size=len(x)), 1, repeats)
    return _percentile_ms(seconds, 50)


def peak_rss_mib() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def train_cell(spec: dict[str, Any], weights_path: str | None = None) -> dict[str, Any]:
    """Train as ``spec`` says; return ``{"rows", "note"}`` (docs/results.md's metrics)."""
    from . import training

    session = training.setup(
        spec["framework"], spec["model"], spec["dataset"], data_dir=spec["data_dir"],
        optimizer=spec["optimizer"], lr=spec["lr"], batch_size=spec["batch_size"],
        seed=spec["seed"], dtype=spec["dtype"], shared_masks=spec["shared_masks"],
        dataset_options=spec["dataset_options"],
        # a recipe run's model and optimizer options (reports/recipes.py); others have none
        model_options={**spec.get("model_options", {}),
                       **({} if spec["init"] is None else {"init": spec["init"]})},
        optimizer_options=spec.get("optimizer_options", {}))
    result = training.fit(session, spec["epochs"], progress=False)
    if result["interrupted"]:
        raise KeyboardInterrupt("training interrupted")
    cid = cell_id(spec)
    keys = {k: spec[k] for k in ("framework", "model", "dataset", "seed")}

    def row(metric: str, value: float, unit: str, **fields: Any) -> dict[str, Any]:
        return make_row(cid, metric, value, unit, kind="train", **keys, **fields)

    rows = []
    for epoch in result["epochs"]:
        e = epoch["epoch"]
        rows += [row("test_accuracy", epoch["test_accuracy"], "fraction", epoch=e),
                 row("test_loss", epoch["test_loss"], "nat", epoch=e),
                 row("train_accuracy", epoch["train_accuracy"], "fraction", epoch=e),
                 row("train_loss", epoch["train_loss"], "nat", epoch=e),
                 row("epoch_seconds", epoch["seconds"], "s", epoch=e)]
    steps = result["steps"]
    rows += [row("step_loss", s["loss"], "nat", epoch=s["epoch"], step=s["step"]) for s in steps]
    warmup = min(spec["warmup_steps"], len(steps) - 1)
    timed = steps[warmup:]
    seconds = [s["seconds"] for s in timed]
    batch = session.x_test[:spec["batch_size"]]  # a fixed batch, (B, C, H, W)
    median = _percentile_ms(seconds, 50)
    # images/s from the same median as the step latency (a mean would mix in the slow
    # outliers and the last, smaller batch): the two always agree, docs/results.md
    rows += [row("step_latency_median", median, "ms"),
             row("step_latency_p90", _percentile_ms(seconds, 90), "ms"),
             row("throughput", spec["batch_size"] / (median / 1e3), "images/s"),
             row("inference_latency", inference_latency(session.model, batch), "ms")]
    if weights_path is not None:
        save_npz_atomic(weights_path, session.model.get_weights())
    rows.append(row("peak_rss", peak_rss_mib(), "MiB"))
    note = (f"{len(steps)} steps; the first {warmup} left out of step latency and throughput "
            f"as warm-up; throughput = batch size / median step; inference latency: median "
            f"of {INFERENCE_REPEATS} predict calls on a batch of {len(batch)}")
    return {"rows": rows, "note": note, "config": result["config"]}


# ---------------------------------------------------------------------------------------------
# op cells


def ops_cell(spec: dict[str, Any]) -> dict[str, Any]:
    from . import opbench

    cid = cell_id(spec)
    rows = [make_row(cid, r.pop("metric"), r.pop("value"), r.pop("unit"), kind="op",
                     framework=spec["framework"], **r)
            for r in opbench.run(spec["framework"], spec["preset"],
                                 tuple(spec.get("ops") or opbench.OPS), dtype=spec["dtype"])]
    note = ("the slow loop-based reference, at each op's smallest size only"
            if spec["framework"] == "reference" else
            "through the backend's public op functions, NumPy arrays in and out: framework "
            "times include the conversions at the backend's edges")
    rows.append(make_row(cid, "peak_rss", peak_rss_mib(), "MiB", kind="op",
                         framework=spec["framework"]))
    return {"rows": rows, "note": note}


# ---------------------------------------------------------------------------------------------
# step cells: the benchmark


def _proc_status_mib() -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (its peak) of this process, MiB, from /proc."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 2**10  # kB
    return found


def trim_heap() -> None:
    """Give the C heap's free memory back to the OS (glibc's malloc_trim).

    glibc keeps freed blocks for reuse, so after a few steps the memory a step allocates and
    frees is already resident before the next one: without the trim, a growth measured from
    the RSS before a step misses it (measured here: a NumPy MLP step 0.0 MiB untrimmed, a
    PyTorch simple_cnn step 0.0 MiB untrimmed and 41 MiB trimmed). A no-op without glibc.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def resident_mib() -> float:
    """This process's resident memory now (VmRSS); where /proc is missing, the lifetime peak."""
    try:
        return _proc_status_mib()["VmRSS"]
    except (OSError, KeyError):
        return peak_rss_mib()


def peak_growth(fn: Callable[[], Any]) -> tuple[Any, float, float, str]:
    """``(fn(), growth, before, method)``: how far this process's peak resident memory rose
    during ``fn`` above its resident memory ``before`` it (MiB, growth >= 0).

    Linux: the C heap is trimmed, then writing "5" to /proc/self/clear_refs resets the peak
    (VmHWM) to the current RSS, so the growth is VmHWM after minus VmRSS before. Elsewhere only
    the lifetime peak ru_maxrss exists: the growth of that peak is a lower bound (0 when ``fn``
    stays below an earlier peak), and ``method`` says so.
    """
    trim_heap()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        before = _proc_status_mib()["VmRSS"]
    except (OSError, KeyError):
        before = peak_rss_mib()
        result = fn()
        return result, max(0.0, peak_rss_mib() - before), before, (
            "growth of the lifetime peak RSS (ru_maxrss; no /proc/self/clear_refs here): a "
            "lower bound, 0 when the steps stay below an earlier peak")
    result = fn()
    return result, max(0.0, _proc_status_mib()["VmHWM"] - before), before, (
        "peak RSS during the timed steps (VmHWM, reset through /proc/self/clear_refs) minus "
        "the RSS just before them, the C heap trimmed (malloc_trim) first")


def _matmul(framework: str, a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
    """The framework's own float32 matmul of a and b, operands already in its tensors."""
    if framework == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(ta, tb)
    if framework == "tensorflow":
        import tensorflow as tf

        ta, tb = tf.constant(a, dtype=tf.float32), tf.constant(b, dtype=tf.float32)
        # eager CPU kernels run synchronously: the call returns with the product computed
        return lambda: tf.linalg.matmul(ta, tb)
    return lambda: a @ b


def gemm_rate(framework: str, n: int, repeats: int = GEMM_REPEATS) -> float:
    """GFLOP/s of ``framework``'s float32 matmul of two n x n matrices (2 n^3 FLOPs), from the
    median of ``repeats`` calls after one warm-up: the rate its BLAS reaches on this machine."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    seconds = timed(_matmul(framework, a, b), 1, repeats)
    return 2 * n**3 / float(np.median(seconds)) / 1e9


def step_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Benchmark one model's training step and inference in one framework (docs/results.md).

    The model starts from the canonical weights of ``spec["seed"]``; the batch is synthetic,
    drawn from a NumPy generator seeded the same way, so every framework sees the same numbers.
    """
    import impls
    from reference.models import initial_weights, resolve

    from .flops import step_flops

    B = impls.load(spec["framework"])
    shape, classes = tuple(spec["input_shape"]), spec["num_classes"]
    batch, dtype, seed = spec["batch_size"], spec["dtype"], spec["seed"]
    model = B.build_model(spec["model"], input_shape=shape, num_classes=classes, seed=seed,
                          dtype=dtype)
    model_spec = resolve(spec["model"], shape, classes)
    model.set_weights(initial_weights(model_spec, seed, dtype))
    opt = B.build_optimizer(spec["optimizer"], model, lr=spec["lr"])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape)).astype(dtype)  # (B, C, H, W)
    y = rng.integers(0, classes, batch)  # (B,)

    # rng=None: dropout draws from the framework's own generator, as a user's step does
    def step() -> None:
        B.train_step(model, opt, x, y)

    trim_heap()
    start = resident_mib()
    watch = CpuWatch().start()  # the other processes' CPU time while this cell measures
    timed(step, spec["warmup"], 0)
    steps, memory, before, how = peak_growth(lambda: timed(step, 0, spec["repeats"]))
    inference = timed(lambda: model.predict(x, batch_size=batch), max(spec["warmup"], 1),
                      spec["repeats"])
    load = watch.stop()
    gflop = step_flops(model_spec, batch) / 1e9
    median = float(np.median(steps))
    cid = cell_id(spec)

    def row(metric: str, value: float, unit: str) -> dict[str, Any]:
        return make_row(cid, metric, value, unit, kind="step", framework=spec["framework"],
                        model=spec["model"], seed=seed)

    rows = [row("step_latency_median", median * 1e3, "ms"),
            row("step_latency_p90", _percentile_ms(steps, 90), "ms"),
            row("throughput", batch / median, "images/s"),
            row("inference_latency", _percentile_ms(inference, 50), "ms"),
            row("inference_latency_p90", _percentile_ms(inference, 90), "ms"),
            row("step_peak_memory", memory, "MiB"),
            row("step_peak_memory_from_start", max(0.0, before + memory - start), "MiB"),
            row("step_gflop", gflop, "GFLOP"),
            row("step_gflops", gflop / median, "GFLOP/s"),
            row("other_cpu", load["other_cpu"], "s"), row("window", load["window"], "s"),
            row("load_average", load["load_average"], "load")]
    # every timed step and predict call, for medians over the bench's rounds (benchcheck.py)
    rows += [make_row(cid, metric, s * 1e3, "ms", kind="step", framework=spec["framework"],
                      model=spec["model"], seed=seed, step=i)
             for metric, times in (("step_time", steps), ("inference_time", inference))
             for i, s in enumerate(times)]
    gemm = ""
    if spec["gemm_size"]:
        rows.append(row("gemm_gflops", gemm_rate(spec["framework"], spec["gemm_size"]),
                        "GFLOP/s"))
        gemm = (f"; GEMM: {spec['gemm_size']}x{spec['gemm_size']} float32 matmul, median of "
                f"{GEMM_REPEATS} after a warm-up")
    rows.append(row("peak_rss", peak_rss_mib(), "MiB"))
    note = (f"one synthetic batch of {batch} x {shape}, {dtype}, {spec['optimizer']} lr "
            f"{spec['lr']}: {spec['warmup']} warm-up steps, then {spec['repeats']} timed; "
            f"inference: model.predict on the batch, as many calls; step FLOPs: conv and "
            f"linear multiply-adds (reports/flops.py); memory: {how} (from start: the same "
            f"peak minus the RSS before the first warm-up step){gemm}")
    return {"rows": rows, "note": note}


# ---------------------------------------------------------------------------------------------
# the cell process


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` completed with SPEC_DEFAULTS; unknown kinds raise ValueError."""
    kind = spec.get("kind")
    if kind not in SPEC_DEFAULTS:
        raise ValueError(f"spec kind: got {kind!r}, expected one of {', '.join(SPEC_DEFAULTS)}")
    defaults = dict(SPEC_DEFAULTS[kind])
    if kind == "step" and spec.get("model") in TUTORIAL_INPUTS:
        shape, classes = TUTORIAL_INPUTS[spec["model"]]
        defaults.update(input_shape=list(shape), num_classes=classes)
    return {**defaults, **spec}


def _injected_failure(cid: str) -> bool:
    patterns = [p for p in os.environ.get(FAIL_VARIABLE, "").split(",") if p]
    return any(fnmatch.fnmatchcase(cid, pattern) for pattern in patterns)


def run_cell(spec: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Measure one cell in this process and return its record (status "ok"; raises on error).

    ``spec["weights_path"]`` (train cells): where to save the final weights; it is not part
    of the recorded spec. ``threads``: default ``spec["threads"]``, else os.cpu_count().
    """
    spec = with_defaults(spec)
    weights_path = spec.pop("weights_path", None)
    cid = cell_id(spec)
    if _injected_failure(cid):
        raise RuntimeError(f"failure injected into cell {cid} by ${FAIL_VARIABLE}")
    threads = threads or spec.get("threads") or os.cpu_count() or 1
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    settings = configure_threads(spec["framework"], threads)
    keep_freed_memory()  # the same allocator settings in every framework's cell
    framework = spec["framework"] if spec["framework"] in ("torch", "tensorflow") else None
    if spec["kind"] == "train":
        measured = train_cell(spec, weights_path)
    elif spec["kind"] == "step":
        measured = step_cell(spec)
    else:
        measured = ops_cell(spec)
    env = {**environment(framework), "thread_settings": settings,
           "load_average_at_start": load_at_start}
    return record(spec, "ok", note=measured["note"], rows=measured["rows"],
                  seconds=time.perf_counter() - start, environment=env)


def main(spec_path: str | os.PathLike, out_path: str | os.PathLike,
         threads: int | None = None, parent_pid: int | None = None,
         cleanup_dir: str | os.PathLike | None = None) -> int:
    """The cell process: read SPEC.json, measure, write the record to OUT.json.

    On an error the record says "failed" with the traceback and the exit status is 1; the
    runner then keeps it (and, when even that could not be written, the stderr tail).
    ``parent_pid``: the runner; once it is gone this process removes ``cleanup_dir`` and
    exits (reports/lifeline.py).
    """
    import json

    if parent_pid is not None:
        from .lifeline import die_with_parent

        die_with_parent(parent_pid, cleanup_dir)

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    try:
        result = run_cell(spec, threads)
    except BaseException as err:  # every failure, Ctrl-C included, must reach the record
        clean = {k: v for k, v in spec.items() if k != "weights_path"}
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        write_json_atomic(out_path, record(clean, "failed", error=text.strip()))
        print(text, file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1
    write_json_atomic(out_path, result)
    return 0
