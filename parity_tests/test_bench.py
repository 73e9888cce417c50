"""The benchmark (``python -m reports bench``), its FLOP counts and its memory measure.

One bench run on tiny settings serves most tests: simple_cnn and mlp on a batch of 4, one
warm-up and two timed steps, a 128 x 128 GEMM, conv2d and linear at the quick sizes; NumPy
and, when installed, PyTorch (the ratios need it), each cell in its own process.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import impls
from parity_tests.conftest import load_or_skip
from reference.models import resolve
from reports import cells, flops, runner
from reports.__main__ import main

BATCH = 4
MODELS = ("simple_cnn", "mlp")
FRAMEWORKS = ["numpy"] + (["torch"] if impls.is_available("torch") else [])
TINY = ["--models", ",".join(MODELS), "--batch-size", str(BATCH), "--warmup", "1",
        "--repeats", "2", "--gemm-size", "128", "--op-preset", "quick", "--ops",
        "conv2d,linear", "--no-progress"]
STEP_UNITS = {"step_latency_median": "ms", "step_latency_p90": "ms", "throughput": "images/s",
              "inference_latency": "ms", "inference_latency_p90": "ms",
              "step_peak_memory": "MiB", "step_peak_memory_from_start": "MiB",
              "step_gflop": "GFLOP", "step_gflops": "GFLOP/s", "gemm_gflops": "GFLOP/s",
              "peak_rss": "MiB"}


def load(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def step_values(results: dict, framework: str, model: str) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in results["rows"]
            if r["cell"] == f"step-{framework}-{model}"}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "--frameworks", ",".join(FRAMEWORKS), "--out", str(out),
                 "--run-id", "b", "--no-render", *TINY]) == 0
    return out / "b"


# ---------------------------------------------------------------------------------------------
# the run


def test_step_rows_hold_every_metric_with_sane_values(bench_run):
    results = load(bench_run)
    for fw in FRAMEWORKS:
        for model in MODELS:
            rows = [r for r in results["rows"] if r["cell"] == f"step-{fw}-{model}"]
            assert {r["metric"]: r["unit"] for r in rows} == STEP_UNITS
            assert all(r["kind"] == "step" and r["framework"] == fw and r["model"] == model
                       for r in rows)
            v = step_values(results, fw, model)
            assert all(math.isfinite(x) for x in v.values()), v
            assert all(x >= 0 for x in v.values()), v
            assert all(v[m] > 0 for m in STEP_UNITS if "memory" not in m), v
            assert v["step_latency_p90"] >= v["step_latency_median"]
            assert v["inference_latency_p90"] >= v["inference_latency"]
            assert v["throughput"] == pytest.approx(BATCH / (v["step_latency_median"] / 1e3))
            shape, classes = cells.TUTORIAL_INPUTS[model]
            gflop = flops.step_flops(resolve(model, shape, classes), BATCH) / 1e9
            assert v["step_gflop"] == pytest.approx(gflop)
            assert v["step_gflops"] == pytest.approx(
                gflop / (v["step_latency_median"] / 1e3))


def test_the_run_directory_is_a_run_of_mode_bench_in_latest_bench(bench_run):
    results = load(bench_run)
    assert results["config"]["mode"] == "bench" and results["complete"] is True
    assert results["execution"]["parallel"] is False
    expected = [f"step-{fw}-{m}" for m in MODELS for fw in FRAMEWORKS]
    expected += [f"ops-{fw}" for fw in [*FRAMEWORKS, "reference"]]
    assert [c["cell_id"] for c in results["cells"]] == expected
    assert all(c["status"] == "ok" and c["parallel"] is False for c in results["cells"])
    spec = next(c["spec"] for c in results["cells"] if c["cell_id"] == "step-numpy-mlp")
    assert spec["input_shape"] == [1, 28, 28] and spec["num_classes"] == 10
    assert spec["optimizer"] == "sgd" and spec["lr"] == 0.01
    assert (bench_run.parent / "latest-bench").resolve() == bench_run.resolve()
    assert not (bench_run.parent / "latest").exists()  # the training report's
    env = json.loads((bench_run / "environment.json").read_text())
    threads = {cid: e["thread_settings"]["threads"] for cid, e in env["cells"].items()}
    assert set(threads) == set(expected) and set(threads.values()) == {results["config"]
                                                                         ["threads"]}
    assert (bench_run / "results.csv").is_file()


def test_op_cells_add_flop_rates_for_conv2d_and_linear(bench_run):
    rows = [r for r in load(bench_run)["rows"] if r["kind"] == "op"]
    rates = [r for r in rows if r["metric"] == "gflops"]
    assert {(r["op"], r["direction"]) for r in rates} == {
        (op, d) for op in ("conv2d", "linear") for d in ("forward", "backward")}
    assert all(r["unit"] == "GFLOP/s" and r["value"] > 0 for r in rates)
    # the quick preset keeps the reference at each op's small size
    assert {r["size"] for r in rows if r["framework"] == "reference" and r["op"] == "conv2d"} \
        == {"N8-C1-H8-W8-F8-k3"}


def test_resume_runs_only_the_missing_cell(bench_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "b"
    shutil.copytree(bench_run, run_dir)
    (run_dir / "cells" / "step-numpy-mlp.json").unlink()
    calls = []
    execute = runner.execute_cell
    monkeypatch.setattr(runner, "execute_cell", lambda spec, timeout: calls.append(
        cells.cell_id(spec)) or execute(spec, timeout))
    assert main(["bench", "--resume", str(run_dir), "--no-render", "--no-progress"]) == 0
    assert calls == ["step-numpy-mlp"]
    assert all(c["status"] == "ok" for c in load(run_dir)["cells"])
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2  # not a `run` run


# ---------------------------------------------------------------------------------------------
# the report


def test_render_from_saved_results(bench_run, tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs matplotlib (the 'report' extra)")
    run_dir = tmp_path / "b"
    shutil.copytree(bench_run, run_dir)
    env = json.loads((run_dir / "environment.json").read_text())
    env["cells"]["step-numpy-mlp"]["openblas_variables"] = {"OPENBLAS_CORETYPE": "Haswell"}
    (run_dir / "environment.json").write_text(json.dumps(env))
    assert main(["render", str(run_dir)]) == 0
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# cnn-rosetta benchmark: run b\n")
    for section in ("## Benchmarks", "### GEMM rate per framework", "### Ops against PyTorch",
                    "### Thread settings of every cell", "## Op benchmarks",
                    "## What each number means", "## Environment"):
        assert section in md
    assert "## Summary" not in md and "## Training curves" not in md  # no training cells
    assert (run_dir / "plots" / "bench_steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "| step-numpy-mlp | " in md  # its thread settings
    assert "**Warning**: `OPENBLAS_CORETYPE=Haswell` was set" in md


def test_ratios_to_pytorch_are_computed_within_the_run(bench_run):
    load_or_skip("torch")
    pytest.importorskip("pandas", reason="the report needs pandas (the 'report' extra)")
    from reports import render

    results = load(bench_run)
    b = render.bench_summary(results, render.usable_rows(results))
    for model in MODELS:
        mine, torch = step_values(results, "numpy", model), step_values(results, "torch", model)
        row = b[(b["model"] == model) & (b["framework"] == "numpy")].iloc[0]
        assert row["vs_torch"] == pytest.approx(mine["step_latency_median"]
                                                / torch["step_latency_median"])
        best = max(step_values(results, fw, m)["gemm_gflops"] for fw in FRAMEWORKS
                   for m in MODELS)
        assert row["gemm_share"] == pytest.approx(mine["step_gflops"] / best)
    table = render.op_ratio_table(render.plots.op_times(render.usable_rows(results)))
    assert table.columns[-1] == "NumPy / PyTorch"
    assert {row[0] for row in table.rows} == {"conv2d", "linear"}


# ---------------------------------------------------------------------------------------------
# FLOPs and memory


def test_simple_cnn_flops_by_hand():
    # conv1: 30 filters 5x5 over 1x28x28 -> 30x24x24: 2*30*24*24*1*25 = 864,000 per image;
    # pool -> 30x12x12 = 4320; fc1: 2*4320*100 = 864,000; fc2: 2*100*10 = 2,000.
    spec = resolve("simple_cnn", (1, 28, 28), 10)
    layers = flops.layer_flops(spec, 1)
    assert [(f.name, f.forward, f.weight_grad, f.input_grad) for f in layers] == [
        ("conv1", 864_000, 864_000, 0),  # no framework computes the data's gradient
        ("fc1", 864_000, 864_000, 864_000), ("fc2", 2_000, 2_000, 2_000)]
    assert flops.forward_flops(spec, 100) == 173_000_000
    assert flops.step_flops(spec, 100) == 100 * (2 * 864_000 + 3 * 864_000 + 3 * 2_000)
    # padding keeps the size: three_layer_cnn's 7x7 conv, pad 3, 32 filters over 3x32x32
    conv1 = flops.layer_flops(resolve("three_layer_cnn", (3, 32, 32), 10), 2)[0]
    assert conv1.forward == 2 * 2 * 32 * 32 * 32 * 3 * 49
    with pytest.raises(ValueError, match="batch_size"):
        flops.step_flops(spec, 0)


def test_the_memory_measure_sees_a_known_allocation():
    size = 64 * 2**20

    def allocate() -> float:
        a = np.ones(size, dtype=np.uint8)  # touched: resident
        return float(a[::4096].sum())

    result, growth, before, method = cells.peak_growth(allocate)
    assert result == size / 4096
    assert growth >= 60, (growth, method)
    assert before > 0
    _, idle, _, _ = cells.peak_growth(lambda: None)
    assert idle < 8


# ---------------------------------------------------------------------------------------------
# the command line


@pytest.mark.parametrize("option,value", [
    ("--repeats", "0"), ("--batch-size", "0"), ("--warmup", "-1"), ("--threads", "0"),
    ("--gemm-size", "-5"), ("--run-id", "latest-bench")])
def test_invalid_numbers_fail_naming_the_argument(option, value, tmp_path, capsys):
    try:  # argparse's own check (SystemExit) or the command's (status 2): the same message
        code = main(["bench", "--out", str(tmp_path), option, value])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m reports bench")
    assert f"error: argument {option}: got {value!r}" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option,value", [("--models", "resnet"), ("--frameworks", "jax"),
                                          ("--dtype", "float16"), ("--op-preset", "huge")])
def test_invalid_names_fail_naming_the_argument(option, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", option, value])
    assert exit_.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_help_documents_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--frameworks", "numpy,torch,tensorflow"),
                            ("--models", "all"), ("--batch-size", "100"),
                            ("--dtype", "float32"), ("--threads", "the number of CPUs"),
                            ("--warmup", "5"), ("--repeats", "30"), ("--gemm-size", "2048"),
                            ("--op-preset", "full"), ("--out", "reports/out"),
                            ("--run-id", "the date and time")):
        assert option in text
        assert f"(default: {default}" in text, option
    for option in ("--no-ops", "--ops", "--resume", "--no-render", "--no-progress"):
        assert option in text
