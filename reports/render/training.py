"""Sections on the training cells: what was measured, the summary, failures, curves, speed,
parity and the baseline. Each builder takes data and returns a ``Section`` (doc.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import plots
from .data import (
    KEYS,
    LOADED_MARK,
    NO_DATA,
    PARALLEL_MARK,
    cells,
    fmt,
    marked,
    number,
    spec,
    summary,
)
from .doc import Bullets, Figure, Para, Pre, Section, Table, code, em, strong
from .front import tolerance_text
from .notes import key_value_table


def _values(field: str, of: list[dict]) -> str:
    found = list(dict.fromkeys(str(s.get(field)) for s in of if s.get(field) is not None))
    return ", ".join(found) or "—"


def measured_section(results: dict) -> Section:
    specs = [spec(c) for c in cells(results)]
    train = [s for s in specs if s.get("kind") == "train"]
    steps = [s for s in specs if s.get("kind") == "step"]
    ops = sum(s.get("kind") == "ops" for s in specs)
    section = Section("What was measured")
    if specs and steps:
        counted = [f"{len(train)} training cells"] if train else []
        counted += [f"{len(steps)} step-benchmark cells", f"{ops} op-benchmark cells"]
        section.add(Bullets((
            f"{len(specs)} cells: {', '.join(counted)}",
            f"frameworks: {_values('framework', specs)}",
            "step benchmarks: models " + ", ".join(dict.fromkeys(
                f"{s.get('model')} {tuple(s.get('input_shape') or ())}" for s in steps)),
            f"batch size: {_values('batch_size', steps)}; dtype: {_values('dtype', steps)}; "
            f"optimizer: {_values('optimizer', steps)}, learning rate {_values('lr', steps)}; "
            f"warm-up steps: {_values('warmup', steps)}; timed steps: "
            f"{_values('repeats', steps)}; threads: {_values('threads', steps)}",
        )))
    elif specs:
        section.add(Bullets((
            f"{len(specs)} cells: {len(train)} training cells, {ops} op-benchmark cells",
            f"frameworks: {_values('framework', specs)}",
            f"models: {_values('model', train)}; datasets: {_values('dataset', train)}; "
            f"seeds: {_values('seed', train)}",
            f"epochs: {_values('epochs', train)}; optimizer: {_values('optimizer', train)}; "
            f"learning rate: {_values('lr', train)}; batch size: "
            f"{_values('batch_size', train)}; dtype: {_values('dtype', train)}",
        )))
    else:
        section.add(Para("results.json lists no cells."))
    config = results.get("config")
    if isinstance(config, dict) and isinstance(config.get("recipe"), dict):
        # a recipe run's block has a section of its own (render/recipe.py): named, not dumped
        config = {**config, "recipe": config["recipe"].get("name")}
    if config:
        section.add(Para("The run's configuration (", code("results.json"), " → ",
                         code("config"), "):"), key_value_table(config))
    return section


def summary_table(s: pd.DataFrame) -> Table:
    def dev(value: object, framework: str) -> str:
        text = fmt(value, 2)
        return "(baseline)" if text == "—" and framework == "numpy" else text

    def timed(column: str) -> list[str]:
        return [marked(v, p, lo) for v, p, lo in zip(s[column], s["parallel"], s["loaded"])]

    return Table.of(pd.DataFrame({
        "framework": s["framework"], "model": s["model"], "dataset": s["dataset"],
        "seeds": s["seeds"], "test accuracy (%)": s["accuracy"],
        "s / epoch": timed("epoch_seconds"), "step median (ms)": timed("step_median"),
        "step p90 (ms)": timed("step_p90"), "images / s": timed("throughput"),
        "peak RSS (MiB)": s["peak_rss"].map(fmt),
        "loss dev. vs NumPy": [dev(v, f) for v, f in zip(s["loss_dev"], s["framework"])],
        "weights dev. vs NumPy": [dev(v, f) for v, f in zip(s["weights_dev"], s["framework"])],
    }))


def marks_note(parallel: bool, loaded: bool) -> list:
    out = []
    if parallel:
        out.append(Para(f"{PARALLEL_MARK} measured while other cells ran beside it: the "
                        "timing competed for cores and is an upper bound."))
    if loaded:
        out.append(Para(f"{LOADED_MARK} measured while the other processes' load was at or "
                        "above the cell's thread count: other work competed for the cores, "
                        "so the timing is unreliable."))
    return out


def summary_section(s: pd.DataFrame) -> Section:
    section = Section("Summary")
    if s.empty:
        return section.add(Para(NO_DATA + " The run has no training cells."))
    section.add(Para("One row per framework × model × dataset; accuracy is the final epoch's, "
                     "mean ± standard deviation over the seeds that finished. Definitions "
                     "below, under ", em("What each number means"), "."), summary_table(s))
    return section.add(*marks_note(bool(s["parallel"].any()), bool(s["loaded"].any())))


def one_line(text: object, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    line = lines[-1] if lines else ""  # a traceback's last line names the error
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _what_cell(s: dict) -> str:
    if s.get("kind") == "ops":
        return "op benchmarks"
    if s.get("kind") == "step":
        return f"step benchmark: {s.get('model')}"
    parts = [s.get("model"), s.get("dataset"),
             None if s.get("seed") is None else f"seed {s.get('seed')}"]
    return " / ".join(str(p) for p in parts if p is not None) or "—"


def problems_section(results: dict) -> Section:
    all_cells = cells(results)
    failed = [c for c in all_cells if c.get("status") == "failed"]
    skipped = [c for c in all_cells if c.get("status") == "skipped"]
    section = Section("Failed and skipped cells")
    by_framework: dict[str, list[dict]] = {}
    for c in all_cells:
        by_framework.setdefault(str(spec(c).get("framework")), []).append(c)
    absent = [(fw, cs) for fw, cs in by_framework.items()
              if all(c.get("status") == "skipped" for c in cs)]
    if absent:
        section.add(Para("Frameworks that did not run at all (not installed, or skipped):"),
                    Bullets([[code(fw), ": " + "; ".join(dict.fromkeys(
                        one_line(c.get("note") or c.get("error")) or "skipped" for c in cs))]
                        for fw, cs in absent]))
    if not failed and not skipped:
        return section.add(Para("None: every cell finished."))
    section.add(Table(("cell", "status", "framework", "what", "error / note"), [
        (str(c.get("cell_id")), str(c.get("status")), str(spec(c).get("framework")),
         _what_cell(spec(c)), one_line(c.get("error") if c.get("status") == "failed" else
                                       c.get("note") or c.get("error")) or "—")
        for c in failed + skipped]))
    if failed:
        section.add(Para("A failed cell's partial rows are left out of every table and plot. "
                         "The errors in full:"))
        for c in failed:
            lines = str(c.get("error") or "(no error text)").rstrip().splitlines()
            section.add(Para(code(c.get("cell_id")), ":"), Pre("\n".join(lines[-30:])))
    return section


def curves_section(images: dict[str, bytes], coincide: dict[str, str | None]) -> Section:
    section = Section("Training curves")
    for name, title in (("loss_curves", "Loss per epoch"),
                        ("accuracy_curves", "Accuracy per epoch")):
        if name not in images:
            section.add(Para(f"{title}: {NO_DATA}"))
            continue
        same = coincide.get(name)
        section.add(Figure(name, title, f"{title}: test solid, train dashed; one panel per "
                                        "model, one colour per framework; mean over seeds, the "
                                        "seeds' range shaded." + (f" {same}" if same else "")))
    return section


def speed_section(images: dict[str, bytes]) -> Section:
    section = Section("Training speed")
    if "speed" not in images:
        return section.add(Para(NO_DATA))
    return section.add(Figure("speed", "training-step latency",
                              "Median training-step latency (ms); the error bar reaches the "
                              "90th percentile. Hatched: measured beside other cells."))


def parity_section(images: dict[str, bytes], info: dict) -> Section:
    section = Section("Parity with the NumPy backend during training")
    if "parity" not in images:
        return section.add(Para(NO_DATA + " (no ", code("parity_loss_dev"), " rows)"))
    exact = "; ".join(f"{fw} {n} of {total}" for fw, (n, total) in info["exact"].items())
    caption = ("Per-step deviation of each framework's loss from the NumPy backend's (same "
               "seed, same batches, same initial weights), log scale; one line per seed. "
               f"Steps where the loss equals NumPy's to the last bit (deviation exactly 0) are "
               f"drawn as hollow markers on the bottom edge, not on the line: {exact}. The "
               f"dashed line is the float32 tolerance of the training-parity tests "
               f"({tolerance_text(info['tolerance'])}).")
    if info.get("coincide"):
        caption += " " + info["coincide"]
    return section.add(Figure("parity", "loss deviation from NumPy", caption))


def baseline_section(s: pd.DataFrame, baseline: Any) -> Section:
    section = Section("Against the baseline")
    if baseline is None:
        return section.add(Para("No baseline.json in the run directory: nothing to compare."))
    if not isinstance(baseline, dict) or not isinstance(baseline.get("rows"), list):
        return section.add(Para("baseline.json holds no ", code("rows"), " in the results.json "
                                "format: nothing compared."))
    b = summary(baseline)
    both = s.merge(b, on=KEYS, suffixes=("", "_base"))
    both = both[both[["accuracy_mean", "accuracy_mean_base", "step_median",
                      "step_median_base"]].notna().any(axis=1)]
    source = [" from ", code(baseline["source"])] if baseline.get("source") else []
    section.add(Para("Baseline run ", code(baseline.get("run_id") or "?"), *source,
                     f" (created {baseline.get('created') or 'at an unknown time'})."))
    section.add(*_regressions(baseline.get("comparison")))
    section.add(Para("Per framework × model × dataset: Δ accuracy in percentage points; "
                     "step ratio = now / baseline (below 1: faster now)."))
    if both.empty:
        return section.add(Para(NO_DATA + " No framework × model × dataset in both runs."))

    def delta(now: object, base: object) -> str:
        now, base = number(now), number(base)
        return "—" if now is None or base is None else f"{(now - base) * 100:+.2f}"

    def ratio(now: object, base: object) -> str:
        now, base = number(now), number(base)
        return "—" if now is None or not base else f"{now / base:.2f}"

    rows = [(fw, m, d, acc, acc_b, delta(am, amb), fmt(sm), fmt(smb), ratio(sm, smb))
            for fw, m, d, acc, acc_b, am, amb, sm, smb in zip(
                both["framework"], both["model"], both["dataset"], both["accuracy"],
                both["accuracy_base"], both["accuracy_mean"], both["accuracy_mean_base"],
                both["step_median"], both["step_median_base"])]
    return section.add(Table(("framework", "model", "dataset", "accuracy now (%)",
                              "baseline (%)", "Δ (pp)", "step ms now", "baseline", "ratio"),
                             rows))


def _regressions(comparison: Any) -> list:
    """The runner's verdict (baseline.json → comparison, see reports/baseline.py), if any."""
    if not isinstance(comparison, dict):
        return []
    limits = comparison.get("thresholds")
    limits = limits if isinstance(limits, dict) else {}
    pairs = comparison.get("pairs") if isinstance(comparison.get("pairs"), list) else []
    found = [r for r in comparison.get("regressions") or [] if isinstance(r, dict)]
    blocks: list = [Para(
        f"The runner compared {len(pairs)} measurements of train cells matched by framework, "
        "model, dataset and seed: ", strong(f"{len(found)} regression(s)"), " (flagged at an "
        f"accuracy drop above {limits.get('max_accuracy_drop', '?')} or a slowdown above "
        f"{limits.get('max_slowdown', '?')}×).")]
    rows = []
    for r in found:
        if r.get("metric") == "status":
            rows.append((str(r.get("cell")), "status", "—", str(r.get("current")), "—", ""))
            continue
        what = "-".join(str(r.get(k)) for k in KEYS + ["seed"])
        accuracy = r.get("metric") == "test_accuracy"

        def shown(v: object, accuracy: bool = accuracy) -> str:
            v = number(v)
            return fmt(None if v is None else v * 100, 4) if accuracy else fmt(v)

        change = number(r.get("change"))
        change = "—" if change is None else (f"{change * 100:+.2f} pp" if accuracy
                                             else f"×{change:.2f}")
        rows.append((what, str(r.get("metric")), shown(r.get("baseline")),
                     shown(r.get("current")), change,
                     "parallel in only one run" if r.get("parallel_mismatch") else ""))
    if rows:
        blocks.append(Table(("cell", "metric", "baseline", "now", "change", "note"), rows))
    missing = [m for m in comparison.get("missing") or [] if isinstance(m, dict)]
    if missing:
        blocks.append(Para(f"{len(missing)} baseline cell(s) not in this run: " + ", ".join(
            "-".join(str(m.get(k)) for k in KEYS + ["seed"]) for m in missing) + "."))
    return blocks


def coincide_note(rows: pd.DataFrame, quantity: str) -> str | None:
    """A caption sentence when every framework's curve of ``quantity`` lies on the others'."""
    spread = plots.curve_spread(rows, quantity)
    if spread is None:
        return None
    frameworks, largest, scale = spread
    if len(frameworks) < 2 or largest > 1e-3 * max(scale, 1e-12):
        return None
    names = ", ".join(frameworks[:-1]) + f" and {frameworks[-1]}"
    return (f"The {names} curves coincide (they differ by at most {fmt(largest, 2)}): one "
            "hides the others.")
