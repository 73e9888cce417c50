"""What one cell measures, in its own process: ``python -m reports cell SPEC.json OUT.json``.

A cell imports exactly one framework (PyTorch and TensorFlow in one process fight over their
thread pools), sets the same thread count for it as for every other framework, measures, and
writes its record (docs/results.md) to OUT.json atomically. Specs:

- ``{"kind": "train", "framework", "model", "dataset", "seed", "epochs", "optimizer", "lr",
  "batch_size", "dtype", ...}``: ``reports.training`` trains the model on the run's batches
  from the seed's canonical weights, timing every step; the final weights go to
  ``spec["weights_path"]`` (a .npz) when given.
- ``{"kind": "ops", "framework", "preset"}``: ``reports.opbench`` op timings.

Fault injection, for testing the runner's robustness: a cell whose id matches one of the
comma-separated glob patterns in ``$CNN_ROSETTA_FAIL_CELLS`` raises before measuring.
"""

from __future__ import annotations

import fnmatch
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from .environment import environment
from .io import save_npz_atomic, write_json_atomic

ROW_FIELDS = ("cell", "kind", "framework", "model", "dataset", "seed", "op", "size",
              "direction", "epoch", "step", "metric", "value", "unit", "parallel")
FAIL_VARIABLE = "CNN_ROSETTA_FAIL_CELLS"
WARMUP_STEPS = 3  # training steps left out of the latency and throughput figures
INFERENCE_REPEATS = 10
SPEC_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"seed": 0, "epochs": 3, "optimizer": "adam", "lr": 2e-3, "batch_size": 32,
              "init": None,
              "dtype": "float32", "data_dir": None, "dataset_options": {},
              "shared_masks": True, "warmup_steps": WARMUP_STEPS},
    "ops": {"preset": "quick", "dtype": "float32"},
}


def cell_id(spec: dict[str, Any]) -> str:
    """``train-<framework>-<model>-<dataset>-seed<seed>`` or ``ops-<framework>``."""
    if spec["kind"] == "ops":
        return f"ops-{spec['framework']}"
    return f"train-{spec['framework']}-{spec['model']}-{spec['dataset']}-seed{spec['seed']}"


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


def inference_latency(model: Any, x: np.ndarray, repeats: int = INFERENCE_REPEATS) -> float:
    """Median time (ms) of ``model.predict`` on the batch ``x``, after one warm-up call."""
    model.predict(x, batch_size=len(x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=len(x))
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


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
        model_options={} if spec["init"] is None else {"init": spec["init"]})
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
    rows += [row("step_latency_median", _percentile_ms(seconds, 50), "ms"),
             row("step_latency_p90", _percentile_ms(seconds, 90), "ms"),
             row("throughput", sum(s["images"] for s in timed) / sum(seconds), "images/s"),
             row("inference_latency", inference_latency(session.model, batch), "ms")]
    if weights_path is not None:
        save_npz_atomic(weights_path, session.model.get_weights())
    rows.append(row("peak_rss", peak_rss_mib(), "MiB"))
    note = (f"{len(steps)} steps; the first {warmup} left out of step latency and throughput "
            f"as warm-up; inference latency: median of {INFERENCE_REPEATS} predict calls on "
            f"a batch of {len(batch)}")
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
# the cell process


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` completed with SPEC_DEFAULTS; unknown kinds raise ValueError."""
    kind = spec.get("kind")
    if kind not in SPEC_DEFAULTS:
        raise ValueError(f"spec kind: got {kind!r}, expected one of {', '.join(SPEC_DEFAULTS)}")
    return {**SPEC_DEFAULTS[kind], **spec}


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
    framework = spec["framework"] if spec["framework"] in ("torch", "tensorflow") else None
    measured = (train_cell(spec, weights_path) if spec["kind"] == "train" else ops_cell(spec))
    env = {**environment(framework), "thread_settings": settings,
           "load_average_at_start": load_at_start}
    return record(spec, "ok", note=measured["note"], rows=measured["rows"],
                  seconds=time.perf_counter() - start, environment=env)


def main(spec_path: str | os.PathLike, out_path: str | os.PathLike,
         threads: int | None = None) -> int:
    """The cell process: read SPEC.json, measure, write the record to OUT.json.

    On an error the record says "failed" with the traceback and the exit status is 1; the
    runner then keeps it (and, when even that could not be written, the stderr tail).
    """
    import json

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
