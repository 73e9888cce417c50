"""The measuring runner (``python -m reports run``) on tiny synthetic data.

Every run here trains the smallest models for one epoch on 48 synthetic 8x8 images, one cell
per process as in a real run; the heavier frameworks appear only where a test needs a second
framework (parity rows), and their op cells benchmark two ops.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import impls
from reports import baseline as baseline_module
from reports import cells, io, runner
from reports.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--dataset-option", "n_train=48",
        "--dataset-option", "n_test=24", "--dataset-option", "input_shape=[1,8,8]",
        "--epochs", "1", "--batch-size", "16", "--no-render", "--no-progress"]
TRAIN_UNITS = {"test_accuracy": "fraction", "test_loss": "nat", "train_accuracy": "fraction",
               "train_loss": "nat", "epoch_seconds": "s", "step_loss": "nat",
               "step_latency_median": "ms", "step_latency_p90": "ms",
               "throughput": "images/s", "inference_latency": "ms", "peak_rss": "MiB"}
# the other framework of the main run: the quicker to start of those installed
OTHER = next((fw for fw in ("torch", "tensorflow") if impls.is_available(fw)), None)


def run(out: Path, *extra: str, frameworks: str = "numpy", models: str = "mlp",
        ops: bool = False) -> int:
    options = ["--ops", "relu,linear"] if ops else ["--no-ops"]
    return main(["run", "--frameworks", frameworks, "--models", models, "--out", str(out),
                 *TINY, *options, *extra])


def load(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def by_id(results: dict) -> dict:
    return {c["cell_id"]: c for c in results["cells"]}


@pytest.fixture(scope="module")
def main_run(tmp_path_factory) -> Path:
    """numpy (+ torch or tensorflow if installed): mlp trained, relu and linear timed."""
    out = tmp_path_factory.mktemp("runs")
    frameworks = "numpy" + (f",{OTHER}" if OTHER else "")
    assert run(out, "--run-id", "main", frameworks=frameworks, ops=True) == 0
    return out / "main"


# ---------------------------------------------------------------------------------------------
# the results format


def test_cells_are_ok_and_rows_hold_every_metric_with_its_unit(main_run):
    results = load(main_run)
    assert {"run_id", "created", "config", "cells", "rows"} <= set(results)
    assert results["complete"] is True
    statuses = {c["cell_id"]: c["status"] for c in results["cells"]}
    frameworks = ["numpy"] + ([OTHER] if OTHER else [])
    expected = {f"train-{fw}-mlp-synthetic-seed0" for fw in frameworks}
    expected |= {f"ops-{fw}" for fw in [*frameworks, "reference"]}
    assert statuses == dict.fromkeys(expected, "ok")
    for row in results["rows"]:
        assert set(row) == set(cells.ROW_FIELDS)
        assert row["parallel"] is False
    for fw in frameworks:
        cid = f"train-{fw}-mlp-synthetic-seed0"
        rows = [r for r in results["rows"] if r["cell"] == cid]
        units = {r["metric"]: r["unit"] for r in rows}
        assert {m: units.get(m) for m in TRAIN_UNITS} == TRAIN_UNITS
        assert len([r for r in rows if r["metric"] == "step_loss"]) == 3  # 48 / 16
        assert all(r["value"] > 0 for r in rows if r["metric"] in (
            "step_latency_median", "throughput", "inference_latency", "peak_rss"))
        weights = np.load(main_run / "weights" / f"{cid}.npz")
        assert sorted(weights.files) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight",
                                         "fc3.bias", "fc3.weight", "fc4.bias", "fc4.weight"]
        record = json.loads((main_run / "cells" / f"{cid}.json").read_text())
        assert record["environment"]["thread_settings"]["threads"] == os.cpu_count()
        # every cell keeps freed memory in its heap (reports/environment.py:keep_freed_memory)
        if sys.platform.startswith("linux"):
            assert record["environment"]["allocator"]["setting"].startswith("glibc mallopt")


def test_op_cells_time_forward_and_backward_and_the_reference_its_small_size(main_run):
    rows = [r for r in load(main_run)["rows"] if r["kind"] == "op"]
    assert {r["metric"] for r in rows} == {"time_median", "time_p90", "gflops", "peak_rss"}
    assert {r["op"] for r in rows if r["metric"] == "gflops"} == {"linear"}  # not relu
    rows = [r for r in rows if r["metric"] not in ("peak_rss", "gflops")]
    numpy_sizes = {r["size"] for r in rows if r["framework"] == "numpy" and r["op"] == "relu"}
    reference = {(r["op"], r["size"], r["direction"], r["metric"]) for r in rows
                 if r["framework"] == "reference"}
    assert len(numpy_sizes) > 1
    assert reference == {(op, size, d, m) for op, size in (("relu", "N8-C4-H8-W8"),
                                                           ("linear", "N8-D64-F32"))
                         for d in ("forward", "backward") for m in ("time_median", "time_p90")}
    assert all(r["unit"] == "ms" and r["value"] > 0 for r in rows)


@pytest.mark.skipif(OTHER is None, reason="parity rows need torch or tensorflow installed")
def test_parity_rows_compare_each_framework_with_numpy(main_run):
    rows = [r for r in load(main_run)["rows"] if r["metric"].startswith("parity")]
    assert {r["framework"] for r in rows} == {OTHER}
    values = {r["metric"]: r["value"] for r in rows if r["step"] is None}
    # same weights, batches and hyperparameters: float32 rounding apart, the same run
    assert 0 <= values["parity_loss_max_dev"] < 1e-4
    assert 0 <= values["parity_weights_max_dev"] < 1e-3
    assert [r["step"] for r in rows if r["metric"] == "parity_loss_dev"] == [1, 2, 3]


def test_csv_environment_and_latest(main_run):
    results = load(main_run)
    with open(main_run / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(results["rows"])
    assert list(table[0]) == list(cells.ROW_FIELDS)
    env = json.loads((main_run / "environment.json").read_text())
    synthetic = env["datasets"]["synthetic"]
    assert synthetic["x_train"]["shape"] == [48, 1, 8, 8]
    assert len(synthetic["x_train"]["sha256"]) == 64
    assert set(env["cells"]) == {c["cell_id"] for c in results["cells"]}
    assert env["versions"]["numpy"] == np.__version__
    latest = main_run.parent / "latest"
    assert latest.resolve() == main_run.resolve()


def test_the_runner_never_imports_a_framework(tmp_path):
    args = ["run", "--frameworks", "numpy", "--models", "mlp", "--out", str(tmp_path), *TINY,
            "--no-ops"]
    code = ("import sys\nfrom reports.__main__ import main\n"
            f"assert main({args!r}) == 0\n"
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# robustness


def test_failed_and_skipped_cells_then_resume_runs_only_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(impls, "available", lambda: ["numpy"])  # TensorFlow "not installed"
    monkeypatch.setenv(cells.FAIL_VARIABLE, "train-numpy-simple_cnn-*")
    assert run(tmp_path, "--run-id", "r", frameworks="numpy,tensorflow",
               models="mlp,simple_cnn") == 0
    run_dir = tmp_path / "r"
    found = by_id(load(run_dir))
    failed = found["train-numpy-simple_cnn-synthetic-seed0"]
    assert failed["status"] == "failed" and "failure injected" in failed["error"]
    assert found["train-numpy-mlp-synthetic-seed0"]["status"] == "ok"
    for model in ("mlp", "simple_cnn"):
        skipped = found[f"train-tensorflow-{model}-synthetic-seed0"]
        assert skipped["status"] == "skipped" and "not installed" in skipped["note"]
    assert {r["cell"] for r in load(run_dir)["rows"]} == {"train-numpy-mlp-synthetic-seed0"}

    monkeypatch.delenv(cells.FAIL_VARIABLE)
    ok_file = run_dir / "cells" / "train-numpy-mlp-synthetic-seed0.json"
    before = ok_file.stat().st_mtime_ns
    calls = []
    execute = runner.execute_cell
    monkeypatch.setattr(runner, "execute_cell",
                        lambda spec, timeout: calls.append(cells.cell_id(spec))
                        or execute(spec, timeout))
    assert main(["run", "--resume", str(run_dir), "--no-render", "--no-progress"]) == 0
    assert calls == ["train-numpy-simple_cnn-synthetic-seed0"]
    assert ok_file.stat().st_mtime_ns == before
    statuses = {cid: c["status"] for cid, c in by_id(load(run_dir)).items()}
    assert statuses["train-numpy-simple_cnn-synthetic-seed0"] == "ok"


def test_ctrl_c_keeps_the_finished_cells(tmp_path, monkeypatch):
    execute = runner.execute_cell
    calls = []

    def interrupt_the_second(spec, timeout):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return execute(spec, timeout)

    monkeypatch.setattr(runner, "execute_cell", interrupt_the_second)
    assert run(tmp_path, "--run-id", "r", models="mlp,simple_cnn") == 130
    results = load(tmp_path / "r")
    assert results["complete"] is False
    assert [c["status"] for c in results["cells"]] == ["ok"]
    assert not (tmp_path / "latest").exists()
    monkeypatch.setattr(runner, "execute_cell", execute)
    assert main(["run", "--resume", str(tmp_path / "r"), "--no-render", "--no-progress"]) == 0
    assert [c["status"] for c in load(tmp_path / "r")["cells"]] == ["ok", "ok"]


def test_a_bad_spec_and_a_timeout_are_failed_records():
    bad = cells.with_defaults({"kind": "train", "framework": "numpy", "model": "no_such_model",
                               "dataset": "synthetic", "threads": 1})
    result = runner.execute_cell(bad)
    assert result["record"]["status"] == "failed" and result["weights"] is None
    assert "no_such_model" in result["record"]["error"]
    slow = {**bad, "model": "mlp"}
    result = runner.execute_cell(slow, timeout=0.05)
    assert result["record"]["status"] == "failed"
    assert result["record"]["error"].startswith("timed out after 0.05 s")


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    io.write_json_atomic(target, {"old": True})

    def crash(fd):
        raise OSError("disk full")  # after the new content went to the temporary file

    monkeypatch.setattr(io.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        io.write_json_atomic(target, {"new": list(range(10000))})
    with pytest.raises(OSError, match="disk full"):
        cells.save_npz_atomic(tmp_path / "w.npz", {"a": np.zeros(3)})
    monkeypatch.undo()
    with pytest.raises(TypeError):
        io.write_json_atomic(target, {"new": object()})
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


# ---------------------------------------------------------------------------------------------
# execution


def test_workers_mark_cells_and_rows_parallel(tmp_path):
    assert run(tmp_path, "--run-id", "r", "--workers", "2", models="mlp,simple_cnn") == 0
    results = load(tmp_path / "r")
    assert [c["status"] for c in results["cells"]] == ["ok", "ok"]
    assert all(c["parallel"] is True for c in results["cells"])
    assert results["rows"] and all(r["parallel"] is True for r in results["rows"])


def test_dask_local_cluster(tmp_path, monkeypatch):
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (pip install "
                              "'cnn-rosetta[report]'): the --scheduler path is not tested")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import reports.runner
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert run(tmp_path, "--run-id", "r", "--scheduler", cluster.scheduler_address,
                   models="mlp,simple_cnn") == 0
    results = load(tmp_path / "r")
    assert [c["status"] for c in results["cells"]] == ["ok", "ok"]
    assert all(r["parallel"] is True for r in results["rows"])
    assert len(list((tmp_path / "r" / "weights").glob("*.npz"))) == 2


# ---------------------------------------------------------------------------------------------
# the baseline


def _doctored(results: dict, cell: str) -> dict:
    """``results`` as if ``cell`` had been 0.1 more accurate and 3 times faster."""
    base = json.loads(json.dumps(results))
    for row in base["rows"]:
        if row["cell"] == cell and row["metric"] == "test_accuracy":
            row["value"] += 0.1
        if row["cell"] == cell and row["metric"] in ("step_latency_median", "epoch_seconds"):
            row["value"] /= 3
    return base


def test_baseline_flags_an_accuracy_drop_and_a_slowdown(main_run, tmp_path, capsys):
    run_dir = tmp_path / "copy"
    shutil.copytree(main_run, run_dir)
    cell = "train-numpy-mlp-synthetic-seed0"
    base_path = tmp_path / "baseline.json"
    base_path.write_text(json.dumps(_doctored(load(run_dir), cell)))
    resume = ["run", "--resume", str(run_dir), "--no-render", "--no-progress",
              "--baseline", str(base_path)]
    assert main(resume) == 0  # without --check: reported, not fatal
    assert main([*resume, "--check"]) == 1
    assert "REGRESSION numpy-mlp-synthetic-0: test accuracy" in capsys.readouterr().out
    saved = json.loads((run_dir / "baseline.json").read_text())
    flagged = {(r["framework"], r["metric"]) for r in saved["comparison"]["regressions"]}
    assert flagged == {("numpy", "test_accuracy"), ("numpy", "step_latency_median"),
                       ("numpy", "epoch_seconds")}
    assert saved["rows"] and saved["run_id"] == "main"  # results.json's format, for render
    assert main([*resume[:-2], "--baseline", str(run_dir), "--check"]) == 0  # itself: no
    assert main(["run", "--check", "--out", str(tmp_path)]) == 2  # --check needs --baseline


def test_baseline_thresholds():
    def results(accuracy, step):
        rows = [{"cell": "c", "kind": "train", "framework": "numpy", "model": "mlp",
                 "dataset": "digits", "seed": 0, "metric": m, "value": v, "epoch": e,
                 "parallel": False}
                for m, v, e in (("test_accuracy", 0.5, 1), ("test_accuracy", accuracy, 2),
                                ("step_latency_median", step, None))]
        return {"cells": [{"cell_id": "c", "status": "ok"}], "rows": rows}

    compare = baseline_module.compare
    assert compare(results(0.89, 14.0), results(0.9, 10.0))["regressions"] == []
    found = compare(results(0.87, 16.0), results(0.9, 10.0))["regressions"]
    assert [(r["metric"], round(r["change"], 2)) for r in found] == [
        ("test_accuracy", -0.03), ("step_latency_median", 1.6)]
    assert compare(results(0.87, 16.0), results(0.9, 10.0), max_accuracy_drop=0.05,
                   max_slowdown=2.0)["regressions"] == []


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--full", "--frameworks", "--models", "--datasets", "--data-dir",
                   "--epochs", "--seeds", "--optimizer", "--lr", "--batch-size", "--out",
                   "--run-id", "--workers", "--scheduler", "--resume", "--no-ops",
                   "--baseline", "--check", "--threads", "--timeout"):
        assert option in text
    assert "(default: adam)" in text and "(default: 32; --full: 100)" in text


def test_a_failing_renderer_leaves_the_results_saved(main_run, tmp_path, monkeypatch, capsys):
    render = pytest.importorskip("reports.render", reason="the renderer's tools are missing")

    def broken(run_dir):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(render, "render", broken)
    run_dir = tmp_path / "copy"
    shutil.copytree(main_run, run_dir)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    assert "rendering failed (RuntimeError: no fonts)" in capsys.readouterr().err
    assert load(run_dir)["complete"] is True
