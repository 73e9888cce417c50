"""The benchmark (``python -m reports bench``), its FLOP counts and its memory measure.

One bench run on tiny settings serves most tests: mlp on a batch of 4 in two interleaved
rounds, one warm-up and two timed steps per cell, a 128 x 128 GEMM, conv2d and linear at the
quick sizes; NumPy and, when installed, PyTorch (the ratios need it), each cell in its own
process. The ratios, their spread, the load rules and --check's verdicts are tested on fake
cell records and fake /proc readings.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import impls
from parity_tests.conftest import load_or_skip
from reference.models import resolve
from reports import bench, benchcheck, cells, flops, loadwatch, runner
from reports.__main__ import main

BATCH = 4
MODELS = ("mlp",)
ROUNDS = 2
FRAMEWORKS = ["numpy"] + (["torch"] if impls.is_available("torch") else [])
TINY = ["--models", ",".join(MODELS), "--batch-size", str(BATCH), "--warmup", "1",
        "--repeats", "2", "--rounds", str(ROUNDS), "--gemm-size", "128", "--op-preset",
        "quick", "--ops", "conv2d,linear", "--no-progress"]
STEP_UNITS = {"step_latency_median": "ms", "step_latency_p90": "ms", "throughput": "images/s",
              "inference_latency": "ms", "inference_latency_p90": "ms",
              "step_peak_memory": "MiB", "step_peak_memory_from_start": "MiB",
              "step_gflop": "GFLOP", "step_gflops": "GFLOP/s", "gemm_gflops": "GFLOP/s",
              "peak_rss": "MiB", "other_cpu": "s", "window": "s", "load_average": "load",
              "step_time": "ms", "inference_time": "ms"}
PER_SAMPLE = ("step_time", "inference_time")  # one row per timed step / predict call


def load(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def step_values(results: dict, framework: str, model: str, round_: int = 1
                ) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in results["rows"]
            if r["cell"] == f"step-{framework}-{model}-r{round_}"
            and r["metric"] not in PER_SAMPLE}


def samples(results: dict, framework: str, model: str, round_: int, metric: str
            ) -> list[float]:
    return [r["value"] for r in results["rows"]
            if r["cell"] == f"step-{framework}-{model}-r{round_}" and r["metric"] == metric]


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
    for fw, model, r in itertools.product(FRAMEWORKS, MODELS, range(1, ROUNDS + 1)):
        rows = [x for x in results["rows"] if x["cell"] == f"step-{fw}-{model}-r{r}"]
        assert {x["metric"]: x["unit"] for x in rows} == STEP_UNITS
        assert all(x["kind"] == "step" and x["framework"] == fw and x["model"] == model
                   for x in rows)
        v = step_values(results, fw, model, r)
        assert all(math.isfinite(x) for x in v.values()), v
        assert all(x >= 0 for x in v.values()), v
        assert all(v[m] > 0 for m in STEP_UNITS
                   if "memory" not in m and m not in PER_SAMPLE and m != "other_cpu"), v
        # every timed step and predict call, in order; their median is the cell's
        steps = samples(results, fw, model, r, "step_time")
        assert [x["step"] for x in rows if x["metric"] == "step_time"] == [0, 1]
        assert v["step_latency_median"] == pytest.approx(float(np.median(steps)))
        assert v["inference_latency"] == pytest.approx(
            float(np.median(samples(results, fw, model, r, "inference_time"))))
        # the window covers the warm-up, the timed steps and the predict calls
        assert v["window"] * 1e3 >= sum(steps)
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
    # round 2 runs the frameworks in the other order
    order = {1: FRAMEWORKS, 2: FRAMEWORKS[::-1]}
    expected = [f"step-{fw}-{m}-r{r}" for m in MODELS for r in (1, 2) for fw in order[r]]
    expected += [f"ops-{fw}" for fw in [*FRAMEWORKS, "reference"]]
    assert [c["cell_id"] for c in results["cells"]] == expected
    assert all(c["status"] == "ok" and c["parallel"] is False for c in results["cells"])
    assert [(c["spec"]["round"], c["spec"]["position"]) for c in results["cells"]
            if c["spec"]["kind"] == "step"] == [
        (r, p + 1) for r in (1, 2) for p in range(len(FRAMEWORKS))]
    assert results["config"]["rounds"] == ROUNDS
    spec = next(c["spec"] for c in results["cells"] if c["cell_id"] == "step-numpy-mlp-r1")
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
    (run_dir / "cells" / "step-numpy-mlp-r2.json").unlink()
    calls = []
    execute = runner.execute_cell
    monkeypatch.setattr(runner, "execute_cell", lambda spec, timeout: calls.append(
        cells.cell_id(spec)) or execute(spec, timeout))
    assert main(["bench", "--resume", str(run_dir), "--no-render", "--no-progress"]) == 0
    assert calls == ["step-numpy-mlp-r2"]
    assert all(c["status"] == "ok" for c in load(run_dir)["cells"])
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2  # not a `run` run


# ---------------------------------------------------------------------------------------------
# the report


def test_render_from_saved_results(bench_run, tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs matplotlib (the 'report' extra)")
    run_dir = tmp_path / "b"
    shutil.copytree(bench_run, run_dir)
    env = json.loads((run_dir / "environment.json").read_text())
    env["cells"]["step-numpy-mlp-r1"]["openblas_variables"] = {"OPENBLAS_CORETYPE": "Haswell"}
    (run_dir / "environment.json").write_text(json.dumps(env))
    assert main(["render", str(run_dir)]) == 0
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# cnn-rosetta benchmark: run b\n")
    for section in ("## Benchmarks", "### Ratios over the rounds, and the targets",
                    "### GEMM rate per framework", "### Ops against PyTorch",
                    "### Thread settings of every cell", "## Op benchmarks",
                    "## What each number means", "## Environment"):
        assert section in md
    assert "## Summary" not in md and "## Training curves" not in md  # no training cells
    assert (run_dir / "plots" / "bench_steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "| step-numpy-mlp-r1 | " in md  # its thread settings
    assert "| step-numpy-mlp-r2 | 2 | " in md  # its round, position and load
    if "torch" in FRAMEWORKS:
        assert "| mlp | step | " in md  # the ratio over the rounds and its verdict
    assert "**Warning**: `OPENBLAS_CORETYPE=Haswell` was set" in md


def test_ratios_to_pytorch_are_computed_within_the_run(bench_run):
    load_or_skip("torch")
    pytest.importorskip("pandas", reason="the report needs pandas (the 'report' extra)")
    from reports import render

    results = load(bench_run)
    b = render.bench_summary(results, render.usable_rows(results))
    rounds = range(1, ROUNDS + 1)

    def over_rounds(fw: str, model: str, metric: str) -> float:  # the summary's median
        return float(np.median([step_values(results, fw, model, r)[metric] for r in rounds]))

    for model in MODELS:
        row = b[(b["model"] == model) & (b["framework"] == "numpy")].iloc[0]
        assert row["vs_torch"] == pytest.approx(over_rounds("numpy", model,
                                                            "step_latency_median")
                                                / over_rounds("torch", model,
                                                              "step_latency_median"))
        # the best framework's GEMM rate, each framework's the median over its cells
        best = max(over_rounds(fw, m, "gemm_gflops") for fw in FRAMEWORKS for m in MODELS)
        assert row["gemm_share"] == pytest.approx(over_rounds("numpy", model, "step_gflops")
                                                  / best)
        # --check's ratio: the medians over every timed step of both rounds
        verdict = next(v for v in benchcheck.evaluate([results], benchcheck.load_targets(),
                                                      all_threads=False)
                       if v["model"] == model and v["metric"] == "step")
        pooled = {fw: float(np.median([x for r in rounds
                                       for x in samples(results, fw, model, r, "step_time")]))
                  for fw in ("numpy", "torch")}
        assert verdict["ratio"] == pytest.approx(pooled["numpy"] / pooled["torch"])
        assert verdict["rounds"] == ROUNDS
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
    ("--gemm-size", "-5"), ("--run-id", "latest-bench"), ("--rounds", "0")])
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
                            ("--warmup", "5"), ("--repeats", "30"), ("--rounds", "3"),
                            ("--gemm-size", "2048"),
                            ("--op-preset", "full"), ("--out", "reports/out"),
                            ("--run-id", "the date and time")):
        assert option in text
        assert f"(default: {default}" in text, option
    for option in ("--no-ops", "--ops", "--resume", "--no-render", "--no-progress",
                   "--check", "--check-runs", "--targets"):
        assert option in text


# ---------------------------------------------------------------------------------------------
# interleaving, ratios over the rounds, the load rules and --check (fake records, no cells)


def test_plan_interleaves_the_frameworks_rotating_their_order():
    config = {**bench.build_config(_parsed([])),
              "frameworks": ["tensorflow", "torch", "numpy"], "models": ["mlp", "simple_cnn"],
              "rounds": 3, "ops": False}
    specs, skipped = bench.plan(config, installed=["numpy", "torch", "tensorflow"])
    assert skipped == {}
    steps = [(s["model"], s["round"], s["position"], s["framework"]) for s in specs]
    n, t, f = "numpy", "torch", "tensorflow"
    expected_rounds = {1: (n, t, f), 2: (t, f, n), 3: (f, n, t)}
    assert steps == [(m, r, p + 1, fw) for m in ("mlp", "simple_cnn") for r in (1, 2, 3)
                     for p, fw in enumerate(expected_rounds[r])]
    assert cells.cell_id(specs[4]) == "step-tensorflow-mlp-r2"
    # a saved run from before the rounds (no "rounds" in its config) keeps its cell ids
    old = {k: v for k, v in config.items() if k != "rounds"}
    assert [cells.cell_id(s) for s in bench.plan(old, ["numpy", "torch", "tensorflow"])[0]] \
        == [f"step-{fw}-{m}" for m in ("mlp", "simple_cnn") for fw in (n, t, f)]


def _parsed(argv: list[str]):
    from reports.__main__ import build_parser

    return build_parser().parse_args(["bench", *argv])


TARGETS = {"source": "test", "subject": "numpy", "reference": "torch", "threads": [2],
           "targets": {"step": {"default": 1.5, "models": {"mlp": 1.0}},
                       "predict": {"default": 1.0}, "memory": {"default": 1.0, "models": {}}},
           "loaded_other_cpu": 0.05}


def fake_cell(framework: str, model: str, round_: int, steps: list[float],
              predict: list[float] | None = None, memory: float = 10.0, *, threads: int = 2,
              other_cpu: float | None = 0.0, window: float = 1.0, marked: bool = False,
              status: str = "ok", note: str | None = None) -> tuple[dict, list[dict]]:
    """A step cell's record and rows as a bench run saves them."""
    spec = cells.with_defaults({"kind": "step", "framework": framework, "model": model,
                                "threads": threads, "round": round_, "position": 1})
    cid = cells.cell_id(spec)

    def row(metric, value, unit, **extra):
        return cells.make_row(cid, metric, value, unit, kind="step", framework=framework,
                              model=model, **extra)

    rows = [] if status != "ok" else [
        row("step_latency_median", float(np.median(steps)), "ms"),
        row("inference_latency", float(np.median(predict or steps)), "ms"),
        row("step_peak_memory", memory, "MiB"), row("other_cpu", other_cpu, "s"),
        row("window", window, "s"), row("load_average", 0.1, "load"),
        *(row("step_time", v, "ms", step=i) for i, v in enumerate(steps)),
        *(row("inference_time", v, "ms", step=i) for i, v in enumerate(predict or steps))]
    rec = {"cell_id": cid, "spec": spec, "status": status, "note": note, "error": None,
           "loaded": marked}
    return rec, rows


def fake_results(*made: tuple[dict, list[dict]], threads: int = 2) -> dict:
    return {"config": {"threads": threads, "rounds": 2}, "cells": [c for c, _ in made],
            "rows": [r for _, rows in made for r in rows]}


def test_ratio_and_spread_from_known_cells():
    results = fake_results(
        fake_cell("numpy", "mlp", 1, [10, 12, 14], memory=30),
        fake_cell("torch", "mlp", 1, [10, 10, 10], memory=40),
        fake_cell("torch", "mlp", 2, [11, 11, 11], memory=40),
        fake_cell("numpy", "mlp", 2, [20, 22, 24], memory=50))
    cells_ = benchcheck.step_cells(results)
    step = benchcheck.compare(cells_, "step", "numpy", "torch")
    # medians over every timed step of both rounds: 17 (of 10..24) and 10.5
    assert step["subject"] == 17 and step["reference"] == 10.5
    assert step["ratio"] == pytest.approx(17 / 10.5)
    # per round: 12 / 10 and 22 / 11
    assert step["per_round"] == pytest.approx([1.2, 2.0]) and step["rounds"] == 2
    assert step["spread"] == pytest.approx((1.6, 1.2, 2.0))
    memory = benchcheck.compare(cells_, "memory", "numpy", "torch")
    assert memory["ratio"] == 1.0 and memory["spread"] == pytest.approx((1.0, 0.75, 1.25))
    [line] = [x for x in benchcheck.check([results], TARGETS)[0] if " step " in x]
    assert line == ("mlp step at 2 threads: numpy/torch 1.62 [rounds: median 1.60, 1.20-2.00, "
                    "2 rounds], target <= 1.00: missed")


def _verdicts(results: dict, targets: dict = TARGETS) -> dict[tuple, dict]:
    return {(v["model"], v["metric"], v["threads"]): v
            for v in benchcheck.evaluate([results], targets)}


def test_check_met_missed_loaded_and_not_measured():
    def run(numpy_steps, **numpy_kw):
        return fake_results(fake_cell("numpy", "mlp", 1, numpy_steps, memory=5, **numpy_kw),
                            fake_cell("torch", "mlp", 1, [10.0], memory=10),
                            fake_cell("numpy", "signs_scratch_cnn", 1, [14.0], [9.0], 5),
                            fake_cell("torch", "signs_scratch_cnn", 1, [10.0], [10.0], 10))

    lines, code = benchcheck.check([run([9.0])], TARGETS)
    assert code == 0, lines
    assert len(lines) == 2 * 3 + 1 and all(x.endswith(": met") for x in lines[:-1])
    assert lines[-1] == ("check: 6 met, 0 missed, 0 unverified (machine loaded), 0 not "
                         "measured, of 6 targets (test): exit 0")
    # a model no target names falls under the default: 1.4 <= 1.5
    assert _verdicts(run([9.0]))[("signs_scratch_cnn", "step", 2)]["target"] == 1.5
    # mlp's own target is 1.0: 1.1 misses it
    v = _verdicts(run([11.0]))
    assert v[("mlp", "step", 2)]["status"] == "missed"
    assert benchcheck.check([run([11.0])], TARGETS)[1] == 1
    # a ratio that meets its target on a loaded machine is not met: 0.2 cores of other work
    for loaded in ({"other_cpu": 0.2}, {"marked": True, "other_cpu": None},
                   {"other_cpu": None}, {"other_cpu": 0.2, "marked": True}):
        lines, code = benchcheck.check([run([9.0], **loaded)], TARGETS)
        v = _verdicts(run([9.0], **loaded))[("mlp", "step", 2)]
        assert code == 1 and v["status"] == "unverified", loaded
        assert "unverified: machine loaded" in next(x for x in lines if "mlp step" in x)
    # within the resolution (two clock ticks) and the threshold: not loaded
    assert _verdicts(run([9.0], other_cpu=0.05))[("mlp", "step", 2)]["status"] == "met"
    # the lagging load-average mark does not overrule a measured CPU time of other processes
    assert _verdicts(run([9.0], other_cpu=0.0, marked=True))[("mlp", "step", 2)]["status"] \
        == "met"


def test_check_without_a_framework_says_not_measured_and_why():
    skipped = fake_results(fake_cell("numpy", "mlp", 1, [9.0]),
                           fake_cell("torch", "mlp", 1, [], status="skipped",
                                     note="torch is not installed"))
    lines, code = benchcheck.check([skipped], TARGETS)
    assert code == 1
    assert lines[0] == ("mlp step at 2 threads: numpy/torch -, target <= 1.00: not measured "
                        "(torch skipped: torch is not installed)")
    alone = fake_results(fake_cell("numpy", "mlp", 1, [9.0]))
    v = _verdicts(alone)[("mlp", "predict", 2)]
    assert v["status"] == "not measured"
    assert v["reason"] == "no torch cells (the run's frameworks: numpy)"
    # the targets hold at 1 thread too: a check without a 1-thread run cannot pass
    both = {**TARGETS, "threads": [2, 1]}
    lines, code = benchcheck.check([fake_results(fake_cell("numpy", "mlp", 1, [9.0]),
                                                 fake_cell("torch", "mlp", 1, [10.0]))], both)
    assert code == 1
    assert sum(x.endswith(": met") for x in lines) == 3  # at 2 threads: 0.9, 0.9, 1.0
    one = [x for x in lines if "at 1 thread:" in x]
    assert len(one) == 3 and all("not measured (no mlp cells at 1 thread(s)" in x for x in one)


def test_other_cpu_time_from_fake_proc_readings(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks
    stat.write_text("cpu  100 20 30 999 50 4 6 40 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n")
    ticks = loadwatch.CLOCK_TICKS
    assert loadwatch.machine_cpu_seconds(str(stat)) == pytest.approx(200 / ticks)
    own = tmp_path / "pid-stat"
    # comm may hold spaces and parentheses; utime and stime are fields 14 and 15
    own.write_text("4242 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 300 25 0 0 20 0 3 0 55\n")
    assert loadwatch.process_cpu_seconds(path=str(own)) == pytest.approx(325 / ticks)
    assert loadwatch.machine_cpu_seconds(str(tmp_path / "missing")) is None

    machine, mine, clock = iter([100.0, 102.9]), iter([5.0, 6.9]), iter([0.0, 1.0])
    watch = loadwatch.CpuWatch(lambda: next(machine), lambda: next(mine), lambda: next(clock),
                               lambda: 3.5)
    assert watch.start().stop() == {"window": 1.0, "other_cpu": 1.0, "load_average": 3.5}
    nothing = loadwatch.CpuWatch(lambda: None, lambda: 1.0, iter([0.0, 2.0]).__next__,
                                 lambda: None).start().stop()
    assert nothing == {"window": 2.0, "other_cpu": None, "load_average": None}
    with pytest.raises(RuntimeError, match="before start"):
        loadwatch.CpuWatch().stop()
    # loaded: more than the threshold (cores) on average, after the reading's resolution
    assert loadwatch.other_cpu_loaded(1.0, 1.0, 0.05, 0.02) is True
    assert loadwatch.other_cpu_loaded(0.07, 1.0, 0.05, 0.02) is False
    assert loadwatch.other_cpu_loaded(0.08, 1.0, 0.05, 0.02) is True
    assert loadwatch.other_cpu_loaded(None, 1.0, 0.05, 0.02) is None
    # the real readers, here: this process's own CPU time is part of the machine's
    if loadwatch.machine_cpu_seconds() is not None:
        w = loadwatch.CpuWatch().start()
        sum(i * i for i in range(200_000))
        assert w.stop()["other_cpu"] >= 0


def test_the_shipped_targets_are_issue_12s():
    t = benchcheck.load_targets()
    assert (t["subject"], t["reference"], t["threads"]) == ("numpy", "torch", [2, 1])
    assert {m: benchcheck.target_for(t, "step", m) for m in (
        "simple_cnn", "mlp", "three_layer_cnn", "signs_cnn", "deep_cnn", "cifar_lrn_cnn",
        "a_model_added_later")} == {"simple_cnn": 1.0, "mlp": 1.0, "three_layer_cnn": 1.5,
                                    "signs_cnn": 1.5, "deep_cnn": 1.5, "cifar_lrn_cnn": 1.5,
                                    "a_model_added_later": 1.5}
    assert benchcheck.target_for(t, "predict", "deep_cnn") == 1.0
    assert benchcheck.target_for(t, "memory", "signs_cnn") == 1.0
    assert t["loaded_other_cpu"] == 0.05


@pytest.mark.parametrize("change,message", [
    ({"subject": None}, "subject: got None, expected a framework name"),
    ({"reference": "numpy"}, "subject and reference: got 'numpy' for both"),
    ({"threads": []}, "threads: got [], expected a non-empty list"),
    ({"threads": [2, 2]}, "threads: got [2, 2], expected a non-empty list of distinct"),
    ({"threads": [0]}, "threads: got [0]"),
    ({"threads": "2"}, "threads: got '2'"),
    ({"targets": {}}, "targets: got {}, expected an object metric ->"),
    ({"targets": {"latency": {"default": 1.0}}}, "targets.latency: got an unknown metric"),
    ({"targets": {"step": {"models": {}}}}, "targets.step: got {'models': {}}, expected"),
    ({"targets": {"step": {"default": -1}}}, "targets.step.default: got -1, expected a "
                                             "positive number"),
    ({"targets": {"step": {"default": "1"}}}, "targets.step.default: got '1'"),
    ({"targets": {"step": {"default": 1, "models": {"mlp": 0}}}},
     "targets.step.models.mlp: got 0, expected a positive number"),
    ({"targets": {"step": {"default": 1, "models": []}}}, "targets.step.models: got []"),
    ({"loaded_other_cpu": -0.1}, "loaded_other_cpu: got -0.1, expected a number >= 0"),
    ({"loaded_other_cpu": None}, "loaded_other_cpu: got None"),
    ({"thread": [2]}, "got unknown key(s) ['thread']"),
])
def test_the_targets_file_is_checked_naming_the_key(change, message, tmp_path):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({**TARGETS, **change}))
    with pytest.raises(benchcheck.TargetsError) as err:
        benchcheck.load_targets(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_a_targets_file_that_is_not_json_or_missing(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text("{'step': 1}")
    with pytest.raises(benchcheck.TargetsError, match="got invalid JSON"):
        benchcheck.load_targets(bad)
    with pytest.raises(benchcheck.TargetsError, match="cannot be read"):
        benchcheck.load_targets(tmp_path / "none.json")
    bad.write_text("[1]")
    with pytest.raises(benchcheck.TargetsError, match="got list, expected a JSON object"):
        benchcheck.load_targets(bad)


# ---------------------------------------------------------------------------------------------
# --check and --check-runs on the command line


def _doctor(run_dir: Path, numpy_ms: float, other_cpu: float = 0.0) -> None:
    """Give the saved run known timings: NumPy's steps and predicts ``numpy_ms``, PyTorch's
    10 ms, memory 1 MiB against 2, no load."""
    results = load(run_dir)
    for rec in results["cells"]:
        rec["loaded"] = False
    for row in results["rows"]:
        if row["kind"] != "step":
            continue
        ms = numpy_ms if row["framework"] == "numpy" else 10.0
        value = {"step_time": ms, "inference_time": ms, "other_cpu": other_cpu,
                 "step_peak_memory": 1.0 if row["framework"] == "numpy" else 2.0}
        row["value"] = value.get(row["metric"], row["value"])
    (run_dir / "results.json").write_text(json.dumps(results))


def test_check_runs_exit_status(bench_run, tmp_path, capsys):
    load_or_skip("torch")
    run_dir = tmp_path / "b"
    shutil.copytree(bench_run, run_dir)
    threads = load(run_dir)["config"]["threads"]
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({**TARGETS, "threads": [threads]}))
    check = ["bench", "--check-runs", str(run_dir), "--targets", str(targets)]

    _doctor(run_dir, 5.0)
    assert main(check) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"mlp step at {threads} thread{'s' if threads > 1 else ''}: numpy/torch "
                      "0.50 [rounds: median 0.50, 0.50-0.50, 2 rounds], target <= 1.00: met")
    assert out[-1].startswith("check: 3 met, 0 missed, 0 unverified") and len(out) == 4
    _doctor(run_dir, 12.0)
    assert main(check) == 1
    assert "target <= 1.00: missed" in capsys.readouterr().out
    _doctor(run_dir, 5.0, other_cpu=0.5)  # half a core of other work in every cell
    assert main(check) == 1
    assert "met, 0 missed, 3 unverified" in capsys.readouterr().out
    # the shipped targets also want 1 thread: not measured in a run at one thread count
    assert main(["bench", "--check-runs", str(run_dir)]) == 1
    assert "not measured (no mlp cells at" in capsys.readouterr().out


def test_check_runs_refuses_options_that_would_run_something(tmp_path, capsys):
    assert main(["bench", "--check-runs", str(tmp_path), "--models", "mlp"]) == 2
    assert "argument --check-runs: checks saved runs and runs nothing: --models" in \
        capsys.readouterr().err
    bad = tmp_path / "t.json"
    bad.write_text("{}")
    assert main(["bench", "--check-runs", str(tmp_path), "--targets", str(bad)]) == 2
    assert "error: argument --targets: " in capsys.readouterr().err


def test_check_runs_the_bench_at_every_thread_count_of_the_targets(tmp_path, monkeypatch,
                                                                    capsys):
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({**TARGETS, "threads": [2, 1]}))
    calls = []

    def run_once(args, threads, run_id, start):  # no cells: known results per thread count
        calls.append((threads, run_id))
        made = [fake_cell(fw, "mlp", 1, [ms], threads=threads or args.threads)
                for fw, ms in (("numpy", 9.0), ("torch", 10.0))]
        return {**fake_results(*made, threads=threads or args.threads),
                "cells": [c for c, _ in made]}

    monkeypatch.setattr(bench, "run_once", run_once)
    base = ["bench", "--out", str(tmp_path), "--targets", str(targets), "--check"]
    assert main([*base, "--run-id", "x"]) == 0
    assert calls == [(2, "x-t2"), (1, "x-t1")]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 * 3 + 1 and out[-1].startswith("check: 6 met")
    # --threads N: that run only, and the other thread count's targets are not measured
    calls.clear()
    assert main([*base, "--run-id", "y", "--threads", "1"]) == 1
    assert calls == [(None, "y")]
    assert "3 met, 0 missed, 0 unverified (machine loaded), 3 not measured" in \
        capsys.readouterr().out
    # without --check: one run, as before
    calls.clear()
    assert main(["bench", "--out", str(tmp_path), "--run-id", "z"]) == 0
    assert calls == [(None, "z")]
