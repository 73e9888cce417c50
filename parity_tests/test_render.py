"""The report renderer (reports/render/) on a small hand-made run directory.

``make_run`` writes results.json, environment.json and baseline.json in the docs/results.md
format with known numbers: numpy and torch trained two models on two seeds, one torch cell
failed (its partial rows must not count), TensorFlow was "not installed" (every cell skipped),
and numpy, torch and the reference ran op benchmarks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas", reason="the report needs pandas: pip install 'cnn-rosetta[report]'")
pytest.importorskip("matplotlib", reason="the report needs matplotlib (the 'report' extra)")
pytest.importorskip("pygments", reason="the code pages need pygments (the 'report' extra)")
pytest.importorskip("jinja2", reason="the report's templates need jinja2 (the 'report' extra)")

from reports import codepages  # noqa: E402
from reports import io as report_io  # noqa: E402
from reports.render import render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("simple_cnn", "mlp")
SEEDS = (0, 1)
EPOCHS = 3
STEPS = 6
# Final test accuracy by (framework, model, seed); latencies by (framework, model, seed).
FINAL_ACCURACY = {("numpy", "simple_cnn", 0): 0.90, ("numpy", "simple_cnn", 1): 0.92,
                  ("numpy", "mlp", 0): 0.80, ("numpy", "mlp", 1): 0.84,
                  ("torch", "simple_cnn", 0): 0.91, ("torch", "simple_cnn", 1): 0.93,
                  ("torch", "mlp", 0): 0.85}
STEP_MS = {"numpy": 10.0, "torch": 4.0}
FAILED = ("torch", "mlp", 1)
NOT_INSTALLED = "tensorflow is not installed: pip install 'cnn-rosetta[tensorflow]'"
# As report.md writes it: brackets from data are escaped, so that no text can form a link.
NOT_INSTALLED_MD = NOT_INSTALLED.replace("[", "\\[").replace("]", "\\]")
OP_SIZES = {"conv2d": ("N8-C3-H16-W16-F8-k3", "N32-C3-H32-W32-F8-k3"),
            "relu": ("N8-D256", "N64-D4096"),
            "softmax_cross_entropy": ("N8-K10", "N256-K10")}
OP_MS = {"reference": 50.0, "numpy": 0.5, "torch": 0.25}


def _train_rows(cell: str, fw: str, model: str, seed: int, parallel: bool) -> list[dict]:
    base = dict(cell=cell, kind="train", framework=fw, model=model, dataset="digits", seed=seed,
                op=None, size=None, direction=None, parallel=parallel)

    def row(metric, value, unit, epoch=None, step=None):
        return {**base, "epoch": epoch, "step": step, "metric": metric, "value": value,
                "unit": unit}

    final = FINAL_ACCURACY.get((fw, model, seed), 0.99)
    rows = []
    for epoch in range(1, EPOCHS + 1):
        rows += [row("test_accuracy", final - 0.1 * (EPOCHS - epoch), "fraction", epoch),
                 row("train_accuracy", final - 0.1 * (EPOCHS - epoch) + 0.01, "fraction", epoch),
                 row("test_loss", 1.0 / epoch + 0.01 * seed, None, epoch),
                 row("train_loss", 0.9 / epoch + 0.01 * seed, None, epoch),
                 row("epoch_seconds", 2.0 + epoch + seed, "s", epoch)]
    rows += [row("step_loss", 2.3 / (step + 1), None, step=step) for step in range(STEPS)]
    ms = STEP_MS[fw] + 2 * seed
    rows += [row("step_latency_median", ms, "ms"), row("step_latency_p90", ms * 1.5, "ms"),
             row("throughput", 100 / ms * 1000, "images/s"),
             row("inference_latency", ms / 3, "ms"), row("peak_rss", 300.0 + 10 * seed, "MiB")]
    if fw != "numpy":
        devs = [0.0] + [1e-7 * (step + 1) * (seed + 1) for step in range(1, STEPS)]
        rows += [row("parity_loss_dev", d, None, step=step) for step, d in enumerate(devs)]
        rows += [row("parity_loss_max_dev", max(devs), None),
                 row("parity_weights_max_dev", 3e-6 * (seed + 1), None)]
    return rows


def _op_rows(cell: str, fw: str, parallel: bool) -> list[dict]:
    rows = []
    for op, sizes in OP_SIZES.items():
        for i, size in enumerate(sizes):
            if fw == "reference" and i > 0:
                continue  # the loop reference runs at small sizes only
            for direction, share in (("forward", 1.0), ("backward", 2.0)):
                ms = OP_MS[fw] * share * (10 ** i)
                for metric, value in (("time_median", ms), ("time_p90", ms * 1.2)):
                    rows.append(dict(cell=cell, kind="op", framework=fw, model=None,
                                     dataset=None, seed=None, op=op, size=size,
                                     direction=direction, epoch=None, step=None, metric=metric,
                                     value=value, unit="ms", parallel=parallel))
    return rows


def _results(run_id: str) -> dict:
    cells, rows = [], []
    for fw in ("numpy", "torch", "tensorflow"):
        for model in MODELS:
            for seed in SEEDS:
                cell_id = f"train-{fw}-{model}-digits-seed{seed}"
                spec = dict(kind="train", framework=fw, model=model, dataset="digits", seed=seed,
                            epochs=EPOCHS, optimizer="adam", lr=0.001, batch_size=100,
                            dtype="float32")
                record = dict(cell_id=cell_id, spec=spec, status="ok", error=None, note=None,
                              parallel=fw == "torch", seconds=12.5, rows=[])
                if fw == "tensorflow":
                    record.update(status="skipped", note=NOT_INSTALLED, seconds=0.0)
                else:
                    record["rows"] = _train_rows(cell_id, fw, model, seed, fw == "torch")
                    if (fw, model, seed) == FAILED:
                        record.update(status="failed", error="Traceback (most recent call last):"
                                      "\n  File \"x.py\", line 1\nRuntimeError: boom: shapes "
                                      "(3, 4) and (5, 6) differ")
                        record["rows"] = record["rows"][:5]  # its first epoch only
                cells.append(record)
                rows += record["rows"]
    for fw in ("reference", "numpy", "torch", "tensorflow"):
        record = dict(cell_id=f"ops-{fw}", spec=dict(kind="ops", framework=fw), status="ok",
                      error=None, note=None, parallel=False, seconds=30.0, rows=[])
        if fw == "tensorflow":
            record.update(status="skipped", note=NOT_INSTALLED)
        else:
            record["rows"] = _op_rows(record["cell_id"], fw, parallel=False)
        cells.append(record)
        rows += record["rows"]
    config = dict(frameworks=["numpy", "torch", "tensorflow"], models=list(MODELS),
                  datasets=["digits"], seeds=list(SEEDS), epochs=EPOCHS, optimizer="adam",
                  lr=0.001, batch_size=100, dtype="float32", jobs=2)
    return dict(run_id=run_id, created="2025-01-02T03:04:05", config=config, cells=cells,
                rows=rows)


def make_run(path: Path, baseline: bool = True) -> Path:
    """A run directory with results.json, environment.json and (optionally) baseline.json."""
    path.mkdir(parents=True, exist_ok=True)
    results = _results("20250102-030405")
    report_io.write_json_atomic(path / "results.json", results)
    report_io.write_json_atomic(path / "environment.json", {
        "python": "3.11.2", "platform": "Linux-x86_64", "cpu": "Test CPU @ 2GHz",
        "cpu_count": 2, "numpy": "2.4.6", "torch": "2.13.0", "tensorflow": None,
        "blas": [{"user_api": "blas", "internal_api": "openblas", "num_threads": 2}],
        "datasets": {"digits": "ab12cd34"}})
    if baseline:
        report_io.write_json_atomic(path / "baseline.json", _baseline())
    return path


def _baseline() -> dict:
    """An earlier run as the runner saves it (reports/baseline.py): no per-step rows, cells
    without rows, and the runner's comparison. numpy was twice as slow then; torch's
    simple_cnn seed 0 twice as fast (a regression now)."""
    old = _results("20241201-000000")
    for row in old["rows"]:
        if row["metric"] == "step_latency_median" and row["framework"] == "numpy":
            row["value"] = 2 * row["value"]
        if row["metric"] == "step_latency_median" and row["cell"] == \
                "train-torch-simple_cnn-digits-seed0":
            row["value"] = row["value"] / 2
    key = dict(framework="torch", model="simple_cnn", dataset="digits", seed=0)
    regression = {**key, "metric": "step_latency_median", "baseline": 2.0, "current": 4.0,
                  "change": 2.0, "regression": True, "parallel_mismatch": False}
    fine = {**key, "metric": "test_accuracy", "baseline": 0.91, "current": 0.91, "change": 0.0,
            "regression": False, "parallel_mismatch": False}
    return {"run_id": old["run_id"], "created": "2024-12-01T00:00:00",
            "source": "reports/out/20241201-000000", "config": old["config"],
            "cells": [{k: v for k, v in c.items() if k != "rows"} for c in old["cells"]],
            "rows": [r for r in old["rows"]
                     if r["metric"] not in ("step_loss", "parity_loss_dev")],
            "comparison": {"thresholds": {"max_accuracy_drop": 0.02, "max_slowdown": 1.5},
                           "pairs": [fine, regression], "regressions": [regression],
                           "missing": [], "failed_cells": ["train-torch-mlp-digits-seed1"]}}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    run = make_run(tmp_path_factory.mktemp("run"))
    return run, render(run)


def _md_row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def test_summary_table_has_the_known_numbers(rendered):
    run, _ = rendered
    md = (run / "report.md").read_text(encoding="utf-8")
    # numpy simple_cnn: final accuracies 0.90 and 0.92 -> 91.00 ± 1.41; step latencies 10 and
    # 12 ms -> median 11.0; s/epoch over epochs 3,4,5 (seed 0) and 4,5,6 (seed 1) -> 4.50.
    assert _md_row("numpy", "simple_cnn", "digits", "2/2 ok", "91.00 ± 1.41", "4.50", "11.0",
                   "16.5") in md
    # torch mlp: the failed seed's partial rows (accuracy 0.99) do not count; its timings ran
    # in parallel and are marked.
    assert _md_row("torch", "mlp", "digits", "1/2 ok (1 failed)", "85.00", "4.00†", "4.00†",
                   "6.00†") in md
    assert "| (baseline) | (baseline) |" in md  # numpy's parity columns
    # torch simple_cnn parity: the largest of seeds 0 and 1 (weights 3e-6, 6e-6).
    torch_row = next(line for line in md.splitlines()
                     if line.startswith("| torch | simple_cnn |"))
    assert torch_row.endswith("| 1.2e-06 | 6.0e-06 |")
    assert "measured while other cells ran beside it" in md


def test_failed_and_skipped_cells_are_listed_with_their_reasons(rendered):
    run, _ = rendered
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "| train-torch-mlp-digits-seed1 | failed | torch | mlp / digits / seed 1 | " \
           "RuntimeError: boom: shapes (3, 4) and (5, 6) differ |" in md
    assert f"| ops-tensorflow | skipped | tensorflow | op benchmarks | {NOT_INSTALLED_MD} |" in md
    assert f"- `tensorflow`: {NOT_INSTALLED_MD}" in md  # the framework that never ran
    assert "Traceback (most recent call last):" in md  # the error in full
    assert "| tensorflow | simple_cnn | digits | 0/2 ok (2 skipped) | — |" in md


def test_sections_baseline_ops_and_definitions(rendered):
    run, written = rendered
    md = (run / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# cnn-rosetta comparison: run 20250102-030405\n")
    for section in ("What was measured", "Summary", "Failed and skipped cells",
                    "Training curves", "Training speed", "Op benchmarks",
                    "Parity with the NumPy backend during training", "Against the baseline",
                    "What each number means", "Environment"):
        assert f"## {section}\n" in md
    # Baseline: numpy was twice as slow then -> ratio 0.50; accuracy unchanged. torch
    # simple_cnn: now median(4, 6) = 5, then median(2, 6) = 4 -> 1.25; the runner's
    # regression (seed 0, 2 -> 4 ms) is listed.
    assert _md_row("numpy", "simple_cnn", "digits", "91.00 ± 1.41", "91.00 ± 1.41", "+0.00",
                   "11.0", "22.0", "0.50") in md
    assert _md_row("torch", "simple_cnn", "digits", "92.00 ± 1.41", "92.00 ± 1.41", "+0.00",
                   "5.00", "4.00", "1.25") in md
    assert "**1 regression(s)**" in md
    assert _md_row("torch-simple_cnn-digits-0", "step_latency_median", "2.00", "4.00",
                   "×2.00", "") in md
    assert "| tensorflow | simple_cnn | digits | — | — |" not in md  # nothing to compare
    # Ops: fwd + bwd at the largest size (numpy 0.5 * 3 * 10 ms, torch half); reference vs
    # numpy at the small size: 150 / 1.5 = ×100.
    assert _md_row("op", "size", "numpy", "torch") in md  # no reference at the largest size
    assert _md_row("conv2d", "N32-C3-H32-W32-F8-k3", "15.0", "7.50") in md
    assert _md_row("conv2d", "N8-C3-H16-W16-F8-k3", "150", "1.50", "×100") in md
    assert "| cpu | Test CPU @ 2GHz |" in md
    assert "| blas | user_api blas, internal_api openblas, num_threads 2 |" in md
    # Plots: written next to the report, linked from it.
    pngs = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert pngs == sorted(["accuracy_curves.png", "loss_curves.png", "op_scaling.png",
                           "parity.png", "reference_speedup.png", "speed.png"])
    for name in pngs:
        assert f"](plots/{name})" in md
        assert written[f"plots/{name}"] == run / "plots" / name
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(rendered):
    run, _ = rendered
    page = (run / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r"""\bsrc\s*=\s*["']([^"']*)["']""", page, re.IGNORECASE)
    assert all(src.startswith("data:image/png;base64,") for src in sources)  # nothing fetched
    links = re.findall(r"""\bhref\s*=\s*["']([^"']*)["']""", page, re.IGNORECASE)
    assert links, "expected at least the code-page link"
    for link in links:
        # the framework-bugs table links its upstream issues; nothing else leaves the run
        if link.startswith("https://") and "Framework bugs this suite found" in page:
            continue
        assert not re.match(r"^(?:[a-z]+:)?//", link, re.IGNORECASE), link
        assert link.startswith(("#", "code/")), link
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == len(list((run / "plots").glob("*.png"))) == 6
    for tag in images:
        data = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<a href="code/index.html">' in page
    assert "91.00 ± 1.41" in page and "RuntimeError: boom" in page


def test_code_pages_put_four_columns_side_by_side(rendered):
    run, written = rendered
    page = (run / "code" / "op-conv2d.html").read_text(encoding="utf-8")
    assert page.count('<div class="col">') == 4
    for title in ("reference/ops.py", "impls/numpy/ops.py", "impls/torch/ops.py",
                  "impls/tensorflow/ops.py"):
        assert f"<h3>{title}</h3>" in page
    for name in ("conv2d_forward", "conv2d_backward"):
        assert page.count(f'<span class="nf">{name}</span>') == 4  # highlighted, every column
    assert "<style>" in page and "http" not in page and "<script" not in page
    index = (run / "code" / "index.html").read_text(encoding="utf-8")
    for op in codepages.OPS:
        assert (run / "code" / codepages.op_filename(op)).is_file()
        assert f'href="{codepages.op_filename(op)}"' in index
        loss = op in ("softmax_cross_entropy", "mse", "l2_regularization")
        text = (run / "code" / codepages.op_filename(op)).read_text(encoding="utf-8")
        name = op if loss else f"{op}_forward"
        assert text.count(f'<span class="nf">{name}</span>') == 4, op
    for name in codepages.FILES:
        assert written[f"code/{codepages.file_filename(name)}"].is_file()
    layers = (run / "code" / codepages.file_filename("layers")).read_text(encoding="utf-8")
    assert layers.count('<span class="nc">Conv2d</span>') == 3  # numpy, torch, tensorflow


def test_code_pages_cut_functions_with_ast():
    module = codepages.Module.read("impls/numpy/ops.py")
    snippet = module.snippet("relu_forward")
    lines = (ROOT / "impls/numpy/ops.py").read_text(encoding="utf-8").splitlines()
    assert snippet.text.splitlines()[0] == lines[snippet.start - 1]
    assert snippet.text.startswith("def relu_forward(")
    assert codepages.op_functions(module, "mse") == ["mse"]
    assert codepages.op_functions(module, "conv2d") == ["conv2d_forward", "conv2d_backward"]


def test_rendering_twice_gives_the_same_report(tmp_path):
    run = make_run(tmp_path / "run")
    render(run)
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    pngs = {p.name: p.read_bytes() for p in (run / "plots").glob("*.png")}
    render(run)
    assert (run / "report.md").read_text() == md
    assert (run / "report.html").read_text() == page
    assert {p.name: p.read_bytes() for p in (run / "plots").glob("*.png")} == pngs


def test_render_imports_no_framework(tmp_path):
    """In a fresh interpreter: rendering leaves torch and tensorflow unimported."""
    run = make_run(tmp_path / "run")
    script = (
        "import sys\n"
        "from reports.render import render\n"
        "before = {m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules}\n"
        f"render({str(run)!r})\n"
        "code = 0\n"
        "after = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'tensorflow', 'keras', 'jax'))\n"
        "print('RESULT', code, sorted(before), after[:5])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "RESULT 0 [] []" in out.stdout, out.stdout + out.stderr
    assert (run / "report.html").is_file()


def test_a_failed_write_leaves_the_old_report_whole(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    render(run)
    old_md, old_html = (run / "report.md").read_text(), (run / "report.html").read_text()
    results = json.loads((run / "results.json").read_text())
    results["run_id"] = "a-new-run"
    report_io.write_json_atomic(run / "results.json", results)

    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "report.md":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        render(run)
    monkeypatch.undo()
    assert (run / "report.md").read_text() == old_md
    assert (run / "report.html").read_text() == old_html
    leftovers = [p.name for p in run.rglob("*.tmp")]
    assert leftovers == []
    render(run)
    assert "a-new-run" in (run / "report.md").read_text()


def test_sparse_results_still_render(tmp_path):
    """One framework, no op rows, no cells list, no environment: every section says so."""
    run = tmp_path / "sparse"
    rows = [r for r in _train_rows("c1", "numpy", "mlp", 0, False)
            if r["metric"] not in ("step_latency_median", "step_latency_p90")]
    report_io.write_json_atomic(run / "results.json", {"run_id": "sparse", "rows": rows})
    written = render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert _md_row("numpy", "mlp", "digits", "—", "80.00") in md
    assert "## Op benchmarks\n\nNo data. The run has no op rows." in md
    assert "No data. (no `parity_loss_dev` rows)" in md
    assert "## Training speed\n\nNo data." in md
    assert "No data. (no environment.json)" in md
    assert "No baseline.json" in md
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count("<img ") == 2 == len([k for k in written if k.startswith("plots/")])


def test_empty_results_and_a_missing_run(tmp_path, capsys):
    from reports.__main__ import main

    run = tmp_path / "empty"
    report_io.write_json_atomic(run / "results.json", {"run_id": "empty", "cells": [],
                                                       "rows": []})
    render(run)  # the renderer itself; the command line refuses a run without a config
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "## Summary\n\nNo data. The run has no training cells." in md
    assert "<img" not in (run / "report.html").read_text(encoding="utf-8")
    assert main(["render", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and "not found" in err


def test_stale_plots_are_removed(tmp_path):
    run = make_run(tmp_path / "run", baseline=False)
    render(run)
    assert (run / "plots" / "parity.png").is_file()
    results = json.loads((run / "results.json").read_text())
    results["rows"] = [r for r in results["rows"] if not r["metric"].startswith("parity")]
    report_io.write_json_atomic(run / "results.json", results)
    render(run)
    assert not (run / "plots" / "parity.png").exists()
    assert "No baseline.json" in (run / "report.md").read_text()


def test_the_verdict_uses_the_training_parity_tolerances():
    """reports/render/front.py duplicates them (the report never imports the test suite)."""
    from parity_tests import test_training_parity
    from reports.render import PARITY_TOLERANCE
    from reports.render.front import PARITY_STEPS

    assert PARITY_TOLERANCE == {"float32": test_training_parity.RUN_TOL_FLOAT32,
                                "float64": test_training_parity.RUN_TOL_FLOAT64}
    assert PARITY_STEPS == test_training_parity.STEPS


def test_the_verdict_judges_the_first_steps_and_reports_the_rest(tmp_path):
    """A run longer than the tests' 20 steps: its first 20 steps are judged, its final weights
    (grown by float32 rounding over the whole run) are reported."""
    run = make_run(tmp_path / "run", baseline=False)

    def longer(results):
        extra = []
        for row in results["rows"]:
            if row["metric"] == "parity_loss_dev" and row["step"] == STEPS - 1:
                extra += [{**row, "step": step, "value": 5e-3 if step >= 20 else 2e-7}
                          for step in range(STEPS, 40)]
            if row["metric"] == "parity_weights_max_dev":
                row["value"] = 3e-3
            if row["metric"] == "parity_loss_max_dev":
                row["value"] = 5e-3
        results["rows"] += extra

    _rewrite(run, longer)
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    verdict = md.split("\n## ")[1]
    assert "**The frameworks agree** with the NumPy backend" in verdict
    assert "loss over the first 20 steps" in verdict
    assert ("Over the whole runs (up to 40 steps) the largest deviations are loss 5.0e-03 and "
            "final weights 3.0e-03") in verdict

    def worse(results):
        for row in results["rows"]:
            if row["metric"] == "parity_loss_dev" and row["step"] == 3 and row["seed"] == 0:
                row["value"] = 2e-3

    _rewrite(run, worse)
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "**The frameworks do not agree**" in md
    assert "loss over the first 20 steps on simple_cnn / digits 2.0e-03 (20× the tolerance)" in md


def _rewrite(run: Path, change) -> None:
    results = json.loads((run / "results.json").read_text())
    change(results)
    report_io.write_json_atomic(run / "results.json", results)


def test_the_report_opens_with_a_verdict(rendered):
    run, _ = rendered
    md = (run / "report.md").read_text(encoding="utf-8")
    first = md.split("\n## ")[1]
    assert first.startswith("Verdict\n")
    assert ("**The frameworks agree** with the NumPy backend: the largest deviations are loss "
            "over the first 6 steps 1.2e-06 (torch, simple_cnn on digits); final weights "
            "6.0e-06 (torch, "
            "simple_cnn on digits), all within the tolerance (float32 1e-4) of the "
            "training-parity tests.") in first
    # simple_cnn: torch median(4, 6) = 5 ms against numpy's median(10, 12) = 11 ms.
    assert ("- **simple_cnn on digits**: torch is fastest, 5.00 ms per step†; step time × "
            "NumPy's: torch ×0.45, numpy ×1.00.") in first
    assert "- **simple_cnn on digits**: numpy 91.00 ± 1.41 %, torch 92.00 ± 1.41 %." in first
    assert "- **mlp on digits**: numpy 82.00 ± 2.83 %, torch 85.00 %." in first
    assert "1 cell(s) failed and 5 were skipped" in first
    assert "loaded during this run" not in md  # no load record: no banner, no ‡
    assert "‡" not in md.split("## Summary")[1].split("## Failed")[0]
    # images / s = batch 100 × 1000 / the 11.0 ms step median shown beside it
    assert _md_row("numpy", "simple_cnn", "digits", "2/2 ok", "91.00 ± 1.41", "4.50", "11.0",
                   "16.5", "9,091") in md


def test_the_verdict_says_when_frameworks_disagree(tmp_path):
    run = make_run(tmp_path / "run", baseline=False)

    def worse(results):
        for row in results["rows"]:
            if row["metric"] == "parity_weights_max_dev" and row["model"] == "mlp":
                row["value"] = 3e-3

    _rewrite(run, worse)
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert ("**The frameworks do not agree**: 1 deviation(s) exceed the tolerance (float32 "
            "1e-4): torch's final weights on mlp / digits 3.0e-03 (30× the tolerance).") in md


def test_a_loaded_run_has_a_banner_and_marked_timings(tmp_path):
    run = make_run(tmp_path / "run", baseline=False)

    def loaded(results):
        results["load"] = {"threads": 2, "start": 2.5, "max": 3.1, "loaded": True}
        for cell in results["cells"]:
            if cell["spec"].get("framework") == "numpy" and cell["spec"].get("model") == \
                    "simple_cnn":
                cell.update(loaded=True, load={"start": 2.5, "max": 3.1})

    _rewrite(run, loaded)
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# cnn-rosetta comparison: run 20250102-030405\n\n> **The machine "
                         "was loaded during this run**: the 1-minute load average was 2.50 at "
                         "the start and other processes' load up to 3.10 while it ran, at or "
                         "above the 2 thread(s) the run kept busy.")
    assert "the timings of the 2 cell(s) that ran under that load are marked ‡" in md
    assert _md_row("numpy", "simple_cnn", "digits", "2/2 ok", "91.00 ± 1.41", "4.50‡",
                   "11.0‡", "16.5‡", "9,091‡") in md
    assert _md_row("numpy", "mlp", "digits", "2/2 ok", "82.00 ± 2.83", "4.50", "11.0") in md
    assert "‡ unreliable: the machine was loaded" in md  # the verdict's speed sentence
    assert "- **‡**: a timing of a cell during which the load of the other processes" in md
    page = (run / "report.html").read_text(encoding="utf-8")
    assert '<p class="banner"><strong>The machine was loaded during this run</strong>' in page


@pytest.mark.parametrize("bad", [None, "nan", "inf", "-inf", float("nan")])
def test_missing_and_non_finite_metrics_read_as_missing(tmp_path, bad):
    run = make_run(tmp_path / "run", baseline=False)

    def spoil(results):
        for row in results["rows"]:
            if row["framework"] == "numpy" and row["model"] == "mlp" and row["metric"] in (
                    "step_latency_median", "step_latency_p90", "test_accuracy"):
                row["value"] = bad

    _rewrite(run, spoil)
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert _md_row("numpy", "mlp", "digits", "2/2 ok", "—", "4.50", "—", "—", "—") in md
    # the metrics' tables (the framework-bugs table quotes reproducers that produce NaN)
    metrics = md.split("## Framework bugs this suite found")[0]
    tables = [line for line in metrics.splitlines() if line.startswith("|")]
    assert tables
    assert not [line for line in tables if "nan" in line.lower() or "inf |" in line.lower()]


def test_framework_bugs_section(tmp_path, monkeypatch):
    import reports.render as render_module

    run = make_run(tmp_path / "run", baseline=False)
    render(run)
    defects = render_module.read_defects()
    md = (run / "report.md").read_text(encoding="utf-8")
    assert ("## Framework bugs this suite found" in md) == (defects is not None)
    monkeypatch.setattr(render_module, "read_defects", lambda: [
        {"id": "tf-conv", "framework": "tensorflow", "versions": "2.21.0", "op": "conv2d",
         "geometry": "C_in 1, stride (1, 2)", "reproducer": "tf.nn.conv2d(x, w, (1, 1, 2, 1))",
         "expected": "0.5", "got": "0.25", "workaround": "im2col", "test": "test_x",
         "upstream": "https://github.com/tensorflow/tensorflow/issues/1"}])
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert _md_row("tensorflow 2.21.0", "conv2d", "C_in 1, stride (1, 2)",
                   "`tf.nn.conv2d(x, w, (1, 1, 2, 1))`", "0.5", "0.25", "im2col",
                   "[https://github.com/tensorflow/tensorflow/issues/1]"
                   "(https://github.com/tensorflow/tensorflow/issues/1)", "`test_x`") in md


def test_parity_caption_counts_exact_steps(rendered):
    run, _ = rendered
    md = (run / "report.md").read_text(encoding="utf-8")
    # Step 0 of each torch run equals NumPy's exactly: simple_cnn seeds 0, 1 and mlp seed 0
    # (seed 1 failed), 6 steps each.
    assert "not on the line: torch 3 of 18." in md
    assert "float32 tolerance of the training-parity tests (1e-4)" in md


def test_the_environment_shows_what_differs_between_cells(tmp_path):
    run = make_run(tmp_path / "run", baseline=False)
    env = json.loads((run / "environment.json").read_text())
    pools = [{"internal_api": "openblas", "num_threads": 1}]
    env["cells"] = {"ops-numpy": {"python": "3.11.2", "blas": pools, "cpu_count": 2},
                    "ops-torch": {"python": "3.11.2", "blas": pools, "torch_threads": 1}}
    report_io.write_json_atomic(run / "environment.json", env)
    render(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    section = md.split("## Environment\n")[1]
    assert section.startswith("\n**The same in the runner and all 2 cells**: python 3.11.2; "
                              "platform Linux-x86_64; cpu Test CPU @ 2GHz; cpu_count 2; ")
    assert "torch_threads 1" in section.split("\n\n")[0]  # recorded by one process only
    assert _md_row("process", "blas") in section  # the only key with two values
    assert _md_row("(the runner)", "user_api blas, internal_api openblas, num_threads 2") \
        in section
    assert _md_row("ops-numpy", "internal_api openblas, num_threads 1") in section
