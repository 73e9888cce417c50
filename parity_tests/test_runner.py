"""The measuring runner (``python -m reports run``) on tiny synthetic data.

Every run here trains the smallest models for one epoch on 48 synthetic 8x8 images, one cell
per process as in a real run; the heavier frameworks appear only where a test needs a second
framework (parity rows), and their op cells benchmark two ops.
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import impls
from reports import baseline as baseline_module
from reports import cells, io, loadwatch, rundir, runfile, runner, runspec
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


# ---------------------------------------------------------------------------------------------
# runs that never lie (issue 10)


def exit_code(argv: list[str]) -> int:
    """main's status, also when argparse itself stops at a bad option (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def test_a_reused_run_id_with_another_config_is_refused(tmp_path, capsys, monkeypatch):
    assert run(tmp_path, "--run-id", "r") == 0
    cell = tmp_path / "r" / "cells" / "train-numpy-mlp-synthetic-seed0.json"
    before = cell.read_bytes()
    capsys.readouterr()
    # issue 10 point 1: these used to reuse the epochs-1 / lr-0.002 cells under the new config
    assert run(tmp_path, "--run-id", "r", "--epochs", "2", "--lr", "0.01") == 2
    err = capsys.readouterr().err
    assert "argument --run-id:" in err and "another config" in err
    assert "epochs 1 there, 2 here" in err and "lr 0.002 there, 0.01 here" in err
    assert cell.read_bytes() == before and load(tmp_path / "r")["config"]["epochs"] == 1
    # the same config continues the run: nothing is run again
    calls = []
    monkeypatch.setattr(runner, "execute_cell",
                        lambda spec, timeout: calls.append(spec) or {})
    assert run(tmp_path, "--run-id", "r") == 0
    assert calls == [] and "continuing run" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--lr", "0.01"], ["--batch-size", "8"],
                                    ["--frameworks", "numpy"], ["--init", "xavier_normal"],
                                    ["--optimizer", "sgd"], ["--out", "elsewhere"]])
def test_resume_refuses_options_that_would_change_the_run(main_run, option, capsys):
    # they used to be ignored silently: the saved lr ran under a results.json saying 0.01
    code = exit_code(["run", "--resume", str(main_run), "--no-render", "--no-progress",
                      *option])
    assert code == 2
    err = capsys.readouterr().err
    assert f"argument --resume: {option[0]} would change the run in {main_run}" in err


def test_a_cell_saved_with_another_spec_is_run_again(tmp_path, monkeypatch):
    assert run(tmp_path, "--run-id", "r", models="mlp,simple_cnn") == 0
    path = tmp_path / "r" / "cells" / "train-numpy-mlp-synthetic-seed0.json"
    record = json.loads(path.read_text())
    record["spec"]["lr"] = 0.5  # a stale record from another config under the same id
    path.write_text(json.dumps(record))
    calls = []
    execute = runner.execute_cell
    monkeypatch.setattr(runner, "execute_cell",
                        lambda spec, timeout: calls.append(cells.cell_id(spec))
                        or execute(spec, timeout))
    assert main(["run", "--resume", str(tmp_path / "r"), "--no-render", "--no-progress"]) == 0
    assert calls == ["train-numpy-mlp-synthetic-seed0"]
    saved = json.loads(path.read_text())
    assert saved["spec"]["lr"] == 2e-3
    assert saved["spec_hash"] == runspec.spec_hash(saved["spec"])
    assert runspec.spec_hash({**saved["spec"], "lr": 0.5}) != saved["spec_hash"]


def test_run_directories_are_claimed_atomically_and_uniquely(tmp_path):
    # two runs in the same second used to get the same directory (exists() then create)
    with futures.ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: rundir.create_run_dir(tmp_path, None), range(16)))
    assert all(created for _, created in made)
    assert len({path for path, _ in made}) == 16
    assert all(path.is_dir() for path, _ in made)


def test_latest_copy_fallback_never_races(tmp_path, monkeypatch):
    """Where symlinks are refused, latest is a copy swapped in by renames: concurrent updates
    leave one whole copy and no temporary directory."""
    runs = []
    for name in ("a", "b"):
        (tmp_path / name / "cells").mkdir(parents=True)
        for i in range(30):
            (tmp_path / name / "cells" / f"{i}.json").write_text(name)
        runs.append(tmp_path / name)

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks refused here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    with futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: rundir.update_latest(runs[i % 2]), range(24)))
    latest = tmp_path / "latest"
    assert latest.is_dir() and not latest.is_symlink()
    contents = {p.read_text() for p in (latest / "cells").iterdir()}
    assert len(contents) == 1 and len(list((latest / "cells").iterdir())) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "latest"]


@pytest.mark.parametrize("option, message", [
    (["--lr", "0"], "argument --lr: got '0', expected a finite number in (0, inf)"),
    (["--lr", "-1"], "argument --lr: got '-1'"),
    (["--init", "bogus"], "argument --init: got 'bogus', expected 'model', one of he_normal"),
    (["--timeout", "-1"], "argument --timeout: got '-1', expected a finite number in [0, inf)"),
    (["--timeout", "nan"], "argument --timeout: got 'nan'"),
    (["--max-slowdown", "nan"], "argument --max-slowdown: got 'nan'"),
    (["--dataset-option", "n_train=0"],
     "argument --dataset-option: n_train: got 0, expected an integer >= 1"),
    (["--dataset-option", "bogus=1"], "argument --dataset-option: options: got bogus"),
    (["--epochs", "0"], "argument --epochs: got '0', expected an integer >= 1"),
])
def test_bad_options_stop_the_run_before_anything_starts(tmp_path, monkeypatch, capsys,
                                                         option, message):
    monkeypatch.setattr(runner, "execute_cell", lambda *a: pytest.fail("a cell started"))
    out = tmp_path / "out"
    assert exit_code(["run", "--frameworks", "numpy", "--models", "mlp", "--out", str(out),
                      *TINY, "--no-ops", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m reports run") and message in err
    assert not out.exists() or not any(out.iterdir())  # no run directory


def test_a_run_where_every_cell_failed_exits_1_and_keeps_latest(tmp_path, monkeypatch,
                                                                capsys):
    assert run(tmp_path, "--run-id", "good") == 0
    monkeypatch.setenv(cells.FAIL_VARIABLE, "*")
    assert run(tmp_path, "--run-id", "bad", models="mlp,simple_cnn") == 1
    assert "no cell succeeded" in capsys.readouterr().err
    assert (tmp_path / "latest").resolve() == (tmp_path / "good").resolve()
    assert [c["status"] for c in load(tmp_path / "bad")["cells"]] == ["failed", "failed"]


def test_non_finite_numbers_are_written_as_null(tmp_path):
    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    target = tmp_path / "r.json"
    io.write_json_atomic(target, {"a": float("nan"), "b": [np.float32("inf"), -np.inf, 1.5],
                                  "c": np.arange(2)})
    assert strict(target.read_text()) == {"a": None, "b": [None, None, 1.5], "c": [0, 1]}
    # a cell whose loss diverged: its rows say null, and the saved run reads back
    rows = [cells.make_row("train-numpy-mlp-synthetic-seed0", "test_loss", float("nan"), "nat",
                           kind="train", framework="numpy")]
    io.write_json_atomic(target, {"rows": rows})
    assert strict(target.read_text())["rows"][0]["value"] is None
    assert runfile.load_results(target)["rows"][0]["value"] is None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_output_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = [io.write_json_atomic(tmp_path / "a.json", {}),
                   io.write_text_atomic(tmp_path / "b.md", "x"),
                   io.save_npz_atomic(tmp_path / "c.npz", {"w": np.zeros(2)})]
    finally:
        os.umask(old)
    assert [p.stat().st_mode & 0o777 for p in written] == [mode] * 3  # mkstemp gave 0600


def test_run_files_are_readable_by_others_under_the_usual_umask(main_run):
    # the fixture ran under this process's umask (022 here): every file 0644, not 0600
    umask = io.current_umask()
    modes = {p.stat().st_mode & 0o777 for p in main_run.rglob("*") if p.is_file()}
    assert modes == {0o666 & ~umask}


@pytest.mark.parametrize("kind", ["a-file", "unwritable"])
def test_a_bad_out_is_one_line_and_status_2(tmp_path, capsys, kind):
    if kind == "a-file":
        out = tmp_path / "file"
        out.write_text("")
        reason = "it is a file, not a directory"
    else:  # /sys refuses new entries even to root (read-only here: EPERM or EROFS)
        out = Path("/sys/cnn-rosetta-test") if os.geteuid() == 0 else tmp_path / "ro"
        if os.geteuid() != 0:
            out.mkdir()
            out.chmod(0o500)
        reason = "cannot create run directories there"
    assert run(out) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --out:" in err and reason in err


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        found[int(entry.name)] = (int(fields[1]), fields[0], cmdline)
    return found


def _alive(pid: int) -> bool:
    info = _processes().get(pid)
    return info is not None and info[1] != "Z"  # a zombie has ended; only its entry is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the "
                    "cell processes (the watchdog itself is portable)")
def test_killing_the_runner_ends_its_cells_and_removes_their_temp_dirs(tmp_path):
    # issue 10 point 5: a SIGKILLed runner used to leave its cells running (their own
    # session, no time limit) and their temporary directories behind
    argv = [sys.executable, "-m", "reports", "run", "--frameworks", "numpy", "--models", "mlp",
            "--out", str(tmp_path), "--dataset", "synthetic", "--dataset-option",
            "n_train=4096", "--dataset-option", "n_test=16", "--epochs", "10000",
            "--timeout", "0", "--no-ops", "--no-render", "--no-progress"]
    parent = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        cell = cleanup = None
        deadline = time.monotonic() + 90
        while cell is None and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            for pid, (ppid, _, cmdline) in _processes().items():
                if ppid == parent.pid and " cell " in cmdline:
                    cell, cleanup = pid, Path(cmdline.split("--cleanup-dir ")[1].split()[0])
        assert cell is not None, "the runner started no cell"
        time.sleep(1.0)  # let it reach the training
        assert _alive(cell) and cleanup.is_dir()
    finally:
        parent.kill()  # SIGKILL: the runner cleans nothing up itself
        parent.wait()
    deadline = time.monotonic() + 5
    while (_alive(cell) or cleanup.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(cell), "the cell outlived its runner"
    assert not cleanup.exists(), "the cell's temporary directory was left behind"


def test_the_watchdog_ends_an_orphan_without_pdeathsig(tmp_path):
    """The portable half of reports/lifeline.py: a process whose parent is gone removes its
    directory and exits, found by polling getppid (here the parent is already gone)."""
    directory = tmp_path / "cell-tmp"
    directory.mkdir()
    code = ("import time\nfrom reports.lifeline import die_with_parent\n"
            f"die_with_parent(-1, {str(directory)!r}, interval=0.05)\ntime.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=20)
    assert done.returncode == 3 and not directory.exists()


# ---------------------------------------------------------------------------------------------
# the baseline, checked before the run and never vacuous


@pytest.mark.parametrize("content, fragment", [
    (b'{"rows": [1, 2]}', "rows[0]: got int, expected an object"),
    (b'\xff\xfe{"rows": []}', "is not UTF-8 text"),
    (b'{"rows": "all"}', "rows: got str, expected a list"),
    (b'[]', "holds a JSON list, expected an object"),
    (b'{"rows": [{"cell": "c", "metric": "m", "value": "fast", "kind": "train"}]}',
     "rows[0]: value: got 'fast'"),
])
def test_a_bad_baseline_is_refused_before_the_run(tmp_path, monkeypatch, capsys, content,
                                                  fragment):
    base = tmp_path / "base.json"
    base.write_bytes(content)
    monkeypatch.setattr(runner, "execute_cell", lambda *a: pytest.fail("a cell started"))
    out = tmp_path / "out"
    assert run(out, "--baseline", str(base), "--check") == 2  # not 1, the regression status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --baseline: {base}")
    assert fragment in err
    assert not out.exists()


def test_check_fails_on_a_vacuous_or_partial_comparison(main_run, tmp_path, capsys):
    run_dir = tmp_path / "copy"
    shutil.copytree(main_run, run_dir)
    results = load(run_dir)
    mine = [r for r in results["rows"] if r["cell"] == "train-numpy-mlp-synthetic-seed0"]

    def as_model(model: str) -> list[dict]:
        return [{**r, "model": model, "cell": r["cell"].replace("-mlp-", f"-{model}-")}
                for r in mine]

    resume = ["run", "--resume", str(run_dir), "--no-render", "--no-progress", "--check"]
    vacuous = tmp_path / "vacuous.json"  # another model only: nothing to compare
    vacuous.write_text(json.dumps({"rows": as_model("simple_cnn")}))
    assert main([*resume, "--baseline", str(vacuous)]) == 1
    out = capsys.readouterr().out
    assert "VACUOUS" in out and "PARTIAL: 1 baseline cell(s)" in out
    partial = tmp_path / "partial.json"  # this run's cell and one it lacks
    partial.write_text(json.dumps({"rows": mine + as_model("simple_cnn")}))
    assert main([*resume, "--baseline", str(partial)]) == 1
    assert "PARTIAL: 1 baseline cell(s) have no ok cell in this run (numpy-simple_cnn" \
        in capsys.readouterr().out
    saved = json.loads((run_dir / "baseline.json").read_text())["comparison"]
    assert saved["partial"] is True and saved["vacuous"] is False
    # narrowed explicitly: the subset compared, and --check passes
    assert main([*resume, "--baseline", str(partial),
                 "--baseline-cells", "train-numpy-mlp-*"]) == 0
    out = capsys.readouterr().out
    assert "PARTIAL" not in out and "VACUOUS" not in out
    assert main([*resume[:-1], "--baseline", str(vacuous)]) == 0  # without --check: a report


# ---------------------------------------------------------------------------------------------
# saved runs are input: --resume and render check them


def _break(results: dict, how: str) -> dict:
    broken = json.loads(json.dumps(results))
    if how == "partial-config":
        del broken["config"]["lr"]
    elif how == "seeds-a-string":
        broken["config"]["seeds"] = "0"
    elif how == "cells-not-a-list":
        broken["cells"] = {"a": 1}
    elif how == "row-not-an-object":
        broken["rows"][0] = 3
    elif how == "framework-path":
        broken["config"]["frameworks"] = ["../../../tmp/evil"]
    elif how == "cell-id-path":
        broken["cells"][0]["cell_id"] = "../../evil"
    elif how == "no-config":
        del broken["config"]
    return broken


@pytest.mark.parametrize("how, fragment", [
    ("partial-config", "config: lr: got None, expected a finite number > 0"),
    ("seeds-a-string", "config: seeds: got '0'"),
    ("cells-not-a-list", "cells: got dict, expected a list"),
    ("row-not-an-object", "rows[0]: got int, expected an object"),
    ("framework-path", "config: frameworks: got ['../../../tmp/evil'], expected a non-empty "
                       "list of numpy, torch, tensorflow"),
    ("cell-id-path", "cells[0]: cell_id: got '../../evil', expected a plain name"),
    ("no-config", "has no 'config'"),
])
def test_resume_and_render_refuse_a_malformed_saved_run(main_run, tmp_path, monkeypatch,
                                                        capsys, how, fragment):
    run_dir = tmp_path / "copy"
    shutil.copytree(main_run, run_dir)
    (run_dir / "results.json").write_text(json.dumps(_break(load(run_dir), how)))
    monkeypatch.setattr(runner, "execute_cell", lambda *a: pytest.fail("a cell started"))
    for argv in (["run", "--resume", str(run_dir), "--no-render", "--no-progress"],
                 ["render", str(run_dir)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{run_dir / 'results.json'}" in err and fragment in err
    assert not (tmp_path / "tmp").exists()


# ---------------------------------------------------------------------------------------------
# the load, and timings that agree


def test_runs_and_cells_record_the_load(main_run):
    results = load(main_run)
    load_ = results["load"]
    assert set(load_) == {"threads", "cores", "start", "max", "loaded"}
    assert load_["threads"] == os.cpu_count() and load_["cores"] == os.cpu_count()
    assert isinstance(load_["loaded"], bool)
    for cell in results["cells"]:
        assert set(cell["load"]) == {"start", "max"} and isinstance(cell["loaded"], bool)
        assert all(v is None or v >= 0 for v in cell["load"].values())
    maxima = [c["load"]["max"] for c in results["cells"] if c["load"]["max"] is not None]
    assert load_["max"] == (max(maxima) if maxima else None)
    assert load_["loaded"] == loadwatch.is_loaded((load_["start"], load_["max"]),
                                                  load_["threads"])


def test_the_sampler_subtracts_the_runs_own_load(monkeypatch):
    """The machine's 1-minute average includes the run's own cells; the sampler averages
    their thread count the same way and subtracts it (reports/loadwatch.py)."""
    clock = iter(float(t) for t in range(0, 601, 5))
    monkeypatch.setattr(loadwatch.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(loadwatch, "load_average", lambda: 3.0)  # 2 own + 1 other, steady
    monkeypatch.setattr(loadwatch, "_running_threads",
                        lambda pid, skip=None: 2 if pid == 4242 else 0)
    sampler = loadwatch.LoadSampler(lambda: [4242])
    others = [sampler.sample() for _ in range(121)]
    assert others[0] == 3.0  # before any own history, all of it counts as other load
    assert others[-1] == pytest.approx(1.0, abs=0.01)  # 10 minutes on: the other process
    assert sampler.cell(100.0, 200.0) == {"start": others[20], "max": others[21]}
    assert loadwatch.is_loaded([others[-1], None], threads=1)
    assert not loadwatch.is_loaded([others[-1]], threads=2)
    assert not loadwatch.is_loaded([None], threads=2)


def test_the_sampler_counts_the_threads_the_kernel_counts():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        if not Path(f"/proc/{busy.pid}/task").is_dir():
            pytest.skip("no /proc here: the run's own threads cannot be counted")
        assert loadwatch._running_threads(busy.pid) == 1  # runnable: running or waiting
    finally:
        busy.kill()
        busy.wait()


def test_images_per_second_is_the_batch_over_the_step_median(main_run):
    rows = load(main_run)["rows"]
    for cid in {r["cell"] for r in rows if r["kind"] == "train"}:
        values = {r["metric"]: r["value"] for r in rows if r["cell"] == cid and r["step"] is None
                  and r["epoch"] is None}
        assert values["throughput"] == pytest.approx(16 / (values["step_latency_median"] / 1e3),
                                                     rel=1e-12)


def test_resume_refuses_data_that_changed_since_the_run_started(main_run, tmp_path, capsys):
    run_dir = tmp_path / "copy"
    shutil.copytree(main_run, run_dir)
    env = json.loads((run_dir / "environment.json").read_text())
    env["datasets"]["synthetic"]["x_train"]["sha256"] = "0" * 64  # other files back then
    (run_dir / "environment.json").write_text(json.dumps(env))
    assert main(["run", "--resume", str(run_dir), "--no-render", "--no-progress"]) == 2
    assert "the synthetic data changed since the run started (x_train" in \
        capsys.readouterr().err
