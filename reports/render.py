"""The comparison report, rebuilt from a run directory's saved results alone.

``render(run_dir)`` reads ``results.json``, ``environment.json`` and (if present)
``baseline.json`` (docs/results.md), and writes ``report.md`` with its ``plots/*.png``,
a self-contained ``report.html`` (plots inlined as base64 PNG, CSS inline, no scripts, nothing
fetched) and the side-by-side code pages ``code/*.html``. It never runs or imports a backend.

The report is assembled once as a list of blocks (headings, paragraphs, tables, images) that two
small writers turn into Markdown and HTML, so both say the same thing. Everything is built in
memory first and written afterwards, each file atomically: a failure leaves the previous report
whole.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import codepages, plots
from .io import write_bytes_atomic, write_text_atomic
from .opbench import ISSUE_CONV, size_label

FIELDS = ("cell", "kind", "framework", "model", "dataset", "seed", "op", "size", "direction",
          "epoch", "step", "metric", "value", "unit", "parallel")
KEYS = ["framework", "model", "dataset"]
PARALLEL_MARK = "†"
NO_DATA = "No data."

# ---------------------------------------------------------------------------------------------
# blocks: what the report says, independent of Markdown or HTML


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str  # may hold `code` spans and [links](href)


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    name: str  # plots/<name>.png
    title: str
    caption: str


@dataclass(frozen=True)
class Pre:
    text: str


def _table(frame: pd.DataFrame) -> Table:
    return Table(tuple(str(c) for c in frame.columns),
                 tuple(tuple(str(v) for v in row) for row in frame.itertuples(index=False)))


# ---------------------------------------------------------------------------------------------
# reading the run directory


def _read_json(path: Path, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: not found (a run directory of `python -m reports "
                                    f"run` holds results.json, see docs/results.md)")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def rows_frame(results: dict) -> pd.DataFrame:
    """The tidy rows as a DataFrame with every documented column (absent ones as null)."""
    frame = pd.DataFrame(list(results.get("rows") or []))
    for field in FIELDS:
        if field not in frame:
            frame[field] = None
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    for field in ("epoch", "step", "seed"):
        frame[field] = pd.to_numeric(frame[field], errors="coerce")
    frame["parallel"] = frame["parallel"].map(lambda v: v is True)
    for field in ("framework", "model", "dataset", "op", "metric", "kind"):
        frame[field] = frame[field].astype(object).where(frame[field].notna(), None)
    return frame


def _cells(results: dict) -> list[dict]:
    return [c for c in results.get("cells") or [] if isinstance(c, dict)]


def usable_rows(results: dict) -> pd.DataFrame:
    """Rows of cells that finished: a failed cell's partial rows would pass for results."""
    frame = rows_frame(results)
    status = {c.get("cell_id"): c.get("status") for c in _cells(results)}
    bad = frame["cell"].map(lambda cell: status.get(cell) in ("failed", "skipped"))
    return frame[~bad.astype(bool)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# numbers


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: about ``digits`` significant figures, '—' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    if abs(v) < 10 ** -(digits - 1):
        return f"{v:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def _mean_std(values: pd.Series) -> str:
    values = values.dropna() * 100
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def _train_groups(results: dict, rows: pd.DataFrame) -> list[tuple]:
    """(framework, model, dataset) of every train cell, in the run's order, then any others."""
    keys = [tuple(c.get("spec", {}).get(k) for k in KEYS) for c in _cells(results)
            if c.get("spec", {}).get("kind") == "train"]
    train = rows[rows["kind"] == "train"]
    keys += list(zip(train["framework"], train["model"], train["dataset"]))
    keys = list(dict.fromkeys(keys))
    rank = {fw: i for i, fw in enumerate(plots.ordered(k[0] for k in keys))}
    first = {k: i for i, k in enumerate(dict.fromkeys((k[1], k[2]) for k in keys))}
    return sorted(keys, key=lambda k: (first[(k[1], k[2])], rank.get(k[0], len(rank))))


def _status_counts(results: dict, key: tuple) -> str:
    cells = [c for c in _cells(results) if c.get("spec", {}).get("kind") == "train"
             and tuple(c.get("spec", {}).get(k) for k in KEYS) == key]
    if not cells:
        return "—"
    counts = {s: sum(c.get("status") == s for c in cells) for s in ("ok", "failed", "skipped")}
    text = f"{counts['ok']}/{len(cells)} ok"
    extra = [f"{n} {s}" for s, n in counts.items() if s != "ok" and n]
    return text + (f" ({', '.join(extra)})" if extra else "")


def summary(results: dict, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per framework × model × dataset with the numbers the report tabulates (raw)."""
    rows = usable_rows(results) if rows is None else rows
    train = rows[rows["kind"] == "train"]
    out = []
    for key in _train_groups(results, rows):
        g = train[(train["framework"] == key[0]) & (train["model"] == key[1])
                  & (train["dataset"] == key[2])]

        def metric(name: str, g: pd.DataFrame = g) -> pd.Series:
            return g.loc[g["metric"] == name, "value"].dropna()

        acc = g[(g["metric"] == "test_accuracy") & g["value"].notna()]
        final = acc.sort_values("epoch").groupby("seed", dropna=False).tail(1)["value"]
        timing = g["metric"].isin(["epoch_seconds", "step_latency_median", "step_latency_p90",
                                   "throughput", "inference_latency"])
        out.append({
            "framework": key[0], "model": key[1], "dataset": key[2],
            "seeds": _status_counts(results, key),
            "accuracy": _mean_std(final), "accuracy_mean": final.mean() if len(final) else None,
            "epoch_seconds": metric("epoch_seconds").median(),
            "step_median": metric("step_latency_median").median(),
            "step_p90": metric("step_latency_p90").median(),
            "throughput": metric("throughput").median(),
            "peak_rss": metric("peak_rss").max(),
            "loss_dev": metric("parity_loss_max_dev").max(),
            "weights_dev": metric("parity_weights_max_dev").max(),
            "parallel": bool(g.loc[timing, "parallel"].any()),
        })
    columns = ["framework", "model", "dataset", "seeds", "accuracy", "accuracy_mean",
               "epoch_seconds", "step_median", "step_p90", "throughput", "peak_rss",
               "loss_dev", "weights_dev", "parallel"]
    return pd.DataFrame(out, columns=columns)


def _summary_table(s: pd.DataFrame) -> pd.DataFrame:
    def timed(value: object, parallel: bool) -> str:
        text = fmt(value)
        return text + PARALLEL_MARK if parallel and text != "—" else text

    def dev(value: object, framework: str) -> str:
        text = fmt(value, 2)
        return "(baseline)" if text == "—" and framework == "numpy" else text

    return pd.DataFrame({
        "framework": s["framework"], "model": s["model"], "dataset": s["dataset"],
        "seeds": s["seeds"], "test accuracy (%)": s["accuracy"],
        "s / epoch": [timed(v, p) for v, p in zip(s["epoch_seconds"], s["parallel"])],
        "step median (ms)": [timed(v, p) for v, p in zip(s["step_median"], s["parallel"])],
        "step p90 (ms)": [timed(v, p) for v, p in zip(s["step_p90"], s["parallel"])],
        "images / s": [timed(v, p) for v, p in zip(s["throughput"], s["parallel"])],
        "peak RSS (MiB)": s["peak_rss"].map(fmt),
        "loss dev. vs NumPy": [dev(v, f) for v, f in zip(s["loss_dev"], s["framework"])],
        "weights dev. vs NumPy": [dev(v, f) for v, f in zip(s["weights_dev"], s["framework"])],
    })


# ---------------------------------------------------------------------------------------------
# sections


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        # e.g. threadpoolctl's pools: one line, in an order that does not depend on theirs
        items = sorted(", ".join(f"{k} {v}" for k, v in item.items() if v is not None)
                       for item in value)
        return [(prefix, "; ".join(items))]
    if value is None:
        return [(prefix, "—")]
    text = value if isinstance(value, str) else json.dumps(value)
    return [(prefix, text)]


def _key_value_table(data: Any, key: str = "setting") -> Table:
    return Table((key, "value"), tuple(_flatten(data)))


def _one_line(text: object, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    line = lines[-1] if lines else ""  # a traceback's last line names the error
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _what_cell(spec: dict) -> str:
    if spec.get("kind") == "ops":
        return "op benchmarks"
    if spec.get("kind") == "step":
        return f"step benchmark: {spec.get('model')}"
    parts = [spec.get("model"), spec.get("dataset"),
             None if spec.get("seed") is None else f"seed {spec.get('seed')}"]
    return " / ".join(str(p) for p in parts if p is not None) or "—"


def measured_section(results: dict) -> list:
    cells = _cells(results)
    specs = [c.get("spec", {}) for c in cells]
    train = [s for s in specs if s.get("kind") == "train"]

    def values(field: str, of: list[dict]) -> str:
        found = list(dict.fromkeys(str(s.get(field)) for s in of if s.get(field) is not None))
        return ", ".join(found) or "—"

    steps = [s for s in specs if s.get("kind") == "step"]
    blocks: list = [Heading(2, "What was measured")]
    if cells and steps:
        counted = [f"{len(train)} training cells"] if train else []
        counted += [f"{len(steps)} step-benchmark cells",
                    f"{sum(s.get('kind') == 'ops' for s in specs)} op-benchmark cells"]
        blocks.append(Bullets((
            f"{len(cells)} cells: {', '.join(counted)}",
            f"frameworks: {values('framework', specs)}",
            "step benchmarks: models " + ", ".join(dict.fromkeys(
                f"{s.get('model')} {tuple(s.get('input_shape') or ())}" for s in steps)),
            f"batch size: {values('batch_size', steps)}; dtype: {values('dtype', steps)}; "
            f"optimizer: {values('optimizer', steps)}, learning rate {values('lr', steps)}; "
            f"warm-up steps: {values('warmup', steps)}; timed steps: "
            f"{values('repeats', steps)}; threads: {values('threads', steps)}",
        )))
    elif cells:
        blocks.append(Bullets((
            f"{len(cells)} cells: {len(train)} training cells, "
            f"{sum(s.get('kind') == 'ops' for s in specs)} op-benchmark cells",
            f"frameworks: {values('framework', specs)}",
            f"models: {values('model', train)}; datasets: {values('dataset', train)}; "
            f"seeds: {values('seed', train)}",
            f"epochs: {values('epochs', train)}; optimizer: {values('optimizer', train)}; "
            f"learning rate: {values('lr', train)}; batch size: {values('batch_size', train)}; "
            f"dtype: {values('dtype', train)}",
        )))
    else:
        blocks.append(Para("results.json lists no cells."))
    config = results.get("config")
    if config:
        blocks += [Para("The run's configuration (`results.json` → `config`):"),
                   _key_value_table(config)]
    return blocks


def summary_section(results: dict, s: pd.DataFrame) -> list:
    blocks: list = [Heading(2, "Summary")]
    if s.empty:
        return blocks + [Para(NO_DATA + " The run has no training cells.")]
    blocks += [Para("One row per framework × model × dataset; accuracy is the final epoch's, "
                    "mean ± standard deviation over the seeds that finished. Definitions below, "
                    "under *What each number means*."),
               _table(_summary_table(s))]
    if s["parallel"].any():
        blocks.append(Para(f"{PARALLEL_MARK} measured while other cells ran beside it: the "
                           "timing competed for cores and is an upper bound."))
    return blocks


def problems_section(results: dict) -> list:
    cells = _cells(results)
    failed = [c for c in cells if c.get("status") == "failed"]
    skipped = [c for c in cells if c.get("status") == "skipped"]
    blocks: list = [Heading(2, "Failed and skipped cells")]
    by_framework: dict[str, list[dict]] = {}
    for c in cells:
        by_framework.setdefault(str(c.get("spec", {}).get("framework")), []).append(c)
    absent = [(fw, cs) for fw, cs in by_framework.items()
              if all(c.get("status") == "skipped" for c in cs)]
    if absent:
        blocks.append(Para("Frameworks that did not run at all (not installed, or skipped):"))
        blocks.append(Bullets(tuple(
            f"`{fw}`: " + "; ".join(dict.fromkeys(_one_line(c.get("note") or c.get("error"))
                                                   or "skipped" for c in cs))
            for fw, cs in absent)))
    if not failed and not skipped:
        return blocks + [Para("None: every cell finished.")]
    rows = tuple(
        (str(c.get("cell_id")), str(c.get("status")), str(c.get("spec", {}).get("framework")),
         _what_cell(c.get("spec", {})),
         _one_line(c.get("error") if c.get("status") == "failed" else
                   c.get("note") or c.get("error")) or "—")
        for c in failed + skipped)
    blocks += [Table(("cell", "status", "framework", "what", "error / note"), rows)]
    if failed:
        blocks.append(Para("A failed cell's partial rows are left out of every table and plot. "
                           "The errors in full:"))
        for c in failed:
            lines = str(c.get("error") or "(no error text)").rstrip().splitlines()
            blocks += [Para(f"`{c.get('cell_id')}`:"), Pre("\n".join(lines[-30:]))]
    return blocks


def curves_section(images: dict[str, bytes]) -> list:
    blocks: list = [Heading(2, "Training curves")]
    for name, title in (("loss_curves", "Loss per epoch"),
                        ("accuracy_curves", "Accuracy per epoch")):
        if name in images:
            blocks.append(Image(name, title, f"{title}: test solid, train dashed; one panel "
                                             "per model, one colour per framework; mean over "
                                             "seeds, the seeds' range shaded."))
        else:
            blocks.append(Para(f"{title}: {NO_DATA}"))
    return blocks


def speed_section(images: dict[str, bytes]) -> list:
    blocks: list = [Heading(2, "Training speed")]
    if "speed" not in images:
        return blocks + [Para(NO_DATA)]
    caption = ("Median training-step latency (ms); the error bar reaches the 90th percentile. "
               "Hatched: measured beside other cells.")
    return blocks + [Image("speed", "training-step latency", caption)]


def op_rates(rows: pd.DataFrame) -> Table | None:
    """GFLOP/s of conv2d and linear per size and direction, a column per framework."""
    data = rows[(rows["kind"] == "op") & (rows["metric"] == "gflops") & rows["value"].notna()]
    if data.empty:
        return None
    frameworks = plots.ordered(data["framework"])
    keys = list(dict.fromkeys(zip(data["op"], data["size"], data["direction"])))
    keys.sort(key=lambda k: (_op_rank(k[0]), plots.size_value(k[1]), k[1], k[2] != "forward"))
    table = []
    for op, size, direction in keys:
        at = data[(data["op"] == op) & (data["size"] == size) & (data["direction"] == direction)]
        table.append((op, size, direction, *(
            fmt(at.loc[at["framework"] == fw, "value"].median()) if (at["framework"] == fw).any()
            else "—" for fw in frameworks)))
    return Table(("op", "size", "direction", *frameworks), tuple(table))


def _op_rank(op: object) -> int:
    order = {name: i for i, name in enumerate(codepages.OPS)}
    return order.get(op, len(order))


def ops_section(times: pd.DataFrame, speedup: pd.DataFrame, images: dict[str, bytes],
                rates: Table | None = None) -> list:
    blocks: list = [Heading(2, "Op benchmarks")]
    if times.empty:
        return blocks + [Para(NO_DATA + " The run has no op rows.")]
    if "op_scaling" in images:
        caption = ("Forward + backward time (sum of the medians, ms) against size, log-log: "
                   "one panel per op, one line per framework (the loop reference dashed). Size "
                   "is the product of the size label's numbers with the kernel side squared, "
                   "which grows with the op's work; sizes of equal product share an x and the "
                   "line goes through their mean.")
        blocks.append(Image("op_scaling", "op time against size", caption))
    largest = times.sort_values("size_value").groupby("op", sort=False).tail(1)[["op", "size"]]
    at_largest = times.merge(largest, on=["op", "size"])
    frameworks = plots.ordered(at_largest["framework"])  # the reference runs small sizes only
    table = []
    for op, size in zip(largest["op"], largest["size"]):
        at = times[(times["op"] == op) & (times["size"] == size)]
        cells = []
        for fw in frameworks:
            hit = at[at["framework"] == fw]
            cells.append(fmt(hit["ms"].iloc[0]) + (PARALLEL_MARK if hit["parallel"].iloc[0]
                                                   else "") if len(hit) else "—")
        table.append((op, size, *cells))
    order = {op: i for i, op in enumerate(codepages.OPS)}
    table.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))
    blocks += [Para("Forward + backward (ms, sum of the medians) at each op's largest size "
                    "(largest by the product of the size label's numbers, kernel squared):"),
               Table(("op", "size", *frameworks), tuple(table))]
    if rates is not None:
        blocks += [Para("FLOP rate (GFLOP/s) of conv2d and linear: the multiply-adds "
                        "(reports/flops.py; backward = dx and dW, twice the forward) over the "
                        "median time:"), rates]
    blocks.append(Heading(3, "The loop reference against the NumPy backend"))
    if speedup.empty:
        return blocks + [Para(NO_DATA + " (needs reference and numpy op rows at the same size)")]
    blocks.append(Image("reference_speedup", "reference vs NumPy speed-up",
                        "How many times faster the vectorised NumPy backend is than the loop "
                        "reference, per op, at every size both ran."))
    blocks.append(Table(("op", "size", "reference (ms)", "numpy (ms)", "speed-up"), tuple(
        (op, size, fmt(r), fmt(n), f"×{fmt(x)}") for op, size, r, n, x in
        speedup.itertuples(index=False))))
    issue = speedup[(speedup["op"] == "conv2d") & (speedup["size"] == size_label(ISSUE_CONV))]
    if not issue.empty:
        r = issue.iloc[0]
        blocks.append(Para(
            f"At the size of issue 5 (conv2d `{r['size']}`: N=64, C=3, 32×32, F=32, k=5) the "
            f"NumPy backend takes {fmt(r['numpy_ms'])} ms forward + backward and the loop "
            f"reference {fmt(r['reference_ms'] / 1e3)} s (timed once each way, without "
            f"warm-up): **×{fmt(r['speedup'])}**."))
    return blocks


def parity_section(images: dict[str, bytes], floor: float) -> list:
    blocks: list = [Heading(2, "Parity with the NumPy backend during training")]
    if "parity" not in images:
        return blocks + [Para(NO_DATA + " (no `parity_loss_dev` rows)")]
    caption = ("Per-step deviation of each framework's loss from the NumPy backend's (same "
               "seed, same batches, same initial weights), log scale; one line per seed. An "
               f"exact 0 (the same float bits) is drawn at {floor:g}.")
    return blocks + [Image("parity", "loss deviation from NumPy", caption)]


def baseline_section(s: pd.DataFrame, baseline: Any) -> list:
    blocks: list = [Heading(2, "Against the baseline")]
    if baseline is None:
        return blocks + [Para("No baseline.json in the run directory: nothing to compare.")]
    if not isinstance(baseline, dict) or not isinstance(baseline.get("rows"), list):
        return blocks + [Para("baseline.json holds no `rows` in the results.json format: "
                              "nothing compared.")]
    b = summary(baseline)
    both = s.merge(b, on=KEYS, suffixes=("", "_base"))
    both = both[both[["accuracy_mean", "accuracy_mean_base", "step_median",
                      "step_median_base"]].notna().any(axis=1)]
    source = f" from `{baseline['source']}`" if baseline.get("source") else ""
    blocks.append(Para(f"Baseline run `{baseline.get('run_id') or '?'}`{source} "
                       f"(created {baseline.get('created') or 'at an unknown time'})."))
    blocks += _regressions(baseline.get("comparison"))
    blocks.append(Para("Per framework × model × dataset: Δ accuracy in percentage points; "
                       "step ratio = now / baseline (below 1: faster now)."))
    if both.empty:
        return blocks + [Para(NO_DATA + " No framework × model × dataset in both runs.")]

    def delta(now: object, base: object) -> str:
        if now is None or base is None or pd.isna(now) or pd.isna(base):
            return "—"
        return f"{(float(now) - float(base)) * 100:+.2f}"

    def ratio(now: object, base: object) -> str:
        if now is None or base is None or pd.isna(now) or pd.isna(base) or not base:
            return "—"
        return f"{float(now) / float(base):.2f}"

    rows = tuple((fw, m, d, acc, acc_b, delta(am, amb), fmt(sm), fmt(smb), ratio(sm, smb))
                 for fw, m, d, acc, acc_b, am, amb, sm, smb in zip(
                     both["framework"], both["model"], both["dataset"], both["accuracy"],
                     both["accuracy_base"], both["accuracy_mean"], both["accuracy_mean_base"],
                     both["step_median"], both["step_median_base"]))
    return blocks + [Table(("framework", "model", "dataset", "accuracy now (%)",
                            "baseline (%)", "Δ (pp)", "step ms now", "baseline",
                            "ratio"), rows)]


def _regressions(comparison: Any) -> list:
    """The runner's verdict (baseline.json → comparison, see reports/baseline.py), if any."""
    if not isinstance(comparison, dict):
        return []
    limits = comparison.get("thresholds") or {}
    pairs = comparison.get("pairs") or []
    found = comparison.get("regressions") or []
    blocks: list = [Para(
        f"The runner compared {len(pairs)} measurements of train cells matched by framework, "
        f"model, dataset and seed: **{len(found)} regression(s)** (flagged at an accuracy drop "
        f"above {limits.get('max_accuracy_drop', '?')} or a slowdown above "
        f"{limits.get('max_slowdown', '?')}×).")]
    rows = []
    for r in found:
        if r.get("metric") == "status":
            rows.append((str(r.get("cell")), "status", "—", str(r.get("current")), "—", ""))
            continue
        what = "-".join(str(r.get(k)) for k in KEYS + ["seed"])
        accuracy = r.get("metric") == "test_accuracy"
        shown = (lambda v: fmt(v * 100, 4)) if accuracy else fmt
        change = r.get("change")
        change = "—" if change is None else (f"{change * 100:+.2f} pp" if accuracy
                                             else f"×{change:.2f}")
        rows.append((what, str(r.get("metric")), shown(r.get("baseline")),
                     shown(r.get("current")), change,
                     "parallel in only one run" if r.get("parallel_mismatch") else ""))
    if rows:
        blocks.append(Table(("cell", "metric", "baseline", "now", "change", "note"),
                            tuple(rows)))
    missing = comparison.get("missing") or []
    if missing:
        blocks.append(Para(f"{len(missing)} baseline cell(s) not in this run: " + ", ".join(
            "-".join(str(m.get(k)) for k in KEYS + ["seed"]) for m in missing) + "."))
    return blocks


_TRAIN_DEFINITIONS = (
    "**test accuracy (%)**: the fraction of test images classified correctly after the "
    "last epoch, ×100; mean ± sample standard deviation (ddof 1) over the seeds whose cell "
    "finished (one seed: no ±). *seeds* counts the cells: finished / all.",
    "**s / epoch**: wall-clock seconds of one training epoch, the median over every epoch "
    "of every seed (the first epoch, with its warm-up, included).",
    "**step median / p90 (ms)**: milliseconds per training step (forward, backward, "
    "update) after warm-up, the median and 90th percentile within a cell; the table shows "
    "the median of the cells' values over seeds.",
    "**images / s**: training throughput, images per second (median over seeds).",
    "**peak RSS (MiB)**: the cell process's peak resident memory, MiB (2^20 bytes); the "
    "largest over seeds. Each cell runs in its own process, so this includes the "
    "framework's own footprint.",
    "**loss / weights dev. vs NumPy**: the largest normalised deviation "
    "max|a − b| / max|b| of this framework's loss curve / final weights from the NumPy "
    "backend's in the same run (same seed, same initial weights, same batches); the "
    "largest over seeds. NumPy is the baseline of this comparison.",
)
_STEP_DEFINITIONS = (
    "**step median / p90 (ms)** (benchmarks): milliseconds per training step (forward, "
    "backward, SGD update) on one synthetic batch, over the timed steps after the warm-up "
    "steps; **× PyTorch**: this median over PyTorch's for the same model in the same run "
    "(below 1: faster than PyTorch).",
    "**images / s** (benchmarks): the batch size over the median step time.",
    "**inference (ms)**: the median time of `model.predict` on the same batch.",
    "**GFLOP / step**, **GFLOP/s**: the multiply-adds of the model's convolutions and linear "
    "layers in one step, counted from the model spec (reports/flops.py: forward, weight "
    "gradient, input gradient except the first layer's; element-wise ops not counted), and "
    "that count over the median step time. **% of GEMM**: GFLOP/s over the highest float32 "
    "GEMM rate (2n³ FLOPs of an n × n matmul, each framework's own) measured in the run: how "
    "close the step comes to the machine's limit.",
    "**step memory (MiB)**: the growth of the cell process's peak resident memory during "
    "the timed steps over its resident memory just before them (the C heap trimmed first); "
    "**memory from start**: the same peak over the resident memory before the first "
    "warm-up step, so that memory kept from step to step (framework pools, caches) counts.",
)


def definitions_section(train: bool = True, steps: bool = False) -> list:
    """The definitions of the numbers the report shows: training, benchmark and op ones."""
    return [Heading(2, "What each number means"), Bullets((
        *(_TRAIN_DEFINITIONS if train else ()),
        *(_STEP_DEFINITIONS if steps else ()),
        "**op times**: the median (and p90) of repeated calls after warm-up, in ms, per op, "
        "input size and direction; plots and tables add forward and backward.",
        f"**{PARALLEL_MARK}**: a timing measured while other cells ran beside it (`parallel` in "
        "the rows): it competed for the machine's cores, so read it as an upper bound and "
        "compare it only with timings measured the same way.",
    ))]


def environment_section(environment: Any) -> list:
    blocks: list = [Heading(2, "Environment")]
    if not environment:
        return blocks + [Para(NO_DATA + " (no environment.json)")]
    if not isinstance(environment, dict):
        return blocks + [_key_value_table(environment, "what")]
    per_cell = environment.get("cells")
    common = {k: v for k, v in environment.items() if k != "cells"}
    blocks.append(_key_value_table(common, "what"))
    if isinstance(per_cell, dict) and per_cell:
        shared = dict(_flatten(common))
        rows = []
        for cell, env in per_cell.items():
            own = [f"{k} = {v}" for k, v in _flatten(env) if shared.get(k) != v]
            rows.append((str(cell), "; ".join(own) or "as above"))
        blocks += [Para("Each cell's process, where it differs from the above:"),
                   Table(("cell", "differs"), tuple(rows))]
    return blocks


# ---------------------------------------------------------------------------------------------
# benchmarks: step cells

# bench_summary column -> the step cell's metric
STEP_METRICS = {"gflop": "step_gflop", "step_median": "step_latency_median",
                "step_p90": "step_latency_p90", "throughput": "throughput",
                "inference": "inference_latency", "inference_p90": "inference_latency_p90",
                "gflops": "step_gflops", "memory": "step_peak_memory",
                "memory_from_start": "step_peak_memory_from_start", "gemm": "gemm_gflops"}


def has_steps(results: dict, rows: pd.DataFrame) -> bool:
    return (any(c.get("spec", {}).get("kind") == "step" for c in _cells(results))
            or bool((rows["kind"] == "step").any()))


def has_training(results: dict, rows: pd.DataFrame) -> bool:
    return (any(c.get("spec", {}).get("kind") == "train" for c in _cells(results))
            or bool((rows["kind"] == "train").any()))


def bench_summary(results: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model × framework of the step cells (raw numbers, STEP_METRICS), with
    ``vs_torch`` and ``memory_vs_torch`` (this over PyTorch's cell of the same model) and
    ``gemm_share`` (GFLOP/s over the highest GEMM rate of the run)."""
    step = rows[rows["kind"] == "step"]
    keys = [(c["spec"].get("model"), c["spec"].get("framework")) for c in _cells(results)
            if c.get("spec", {}).get("kind") == "step"]
    keys = list(dict.fromkeys(keys + list(zip(step["model"], step["framework"]))))
    first = {m: i for i, m in enumerate(dict.fromkeys(k[0] for k in keys))}
    rank = {fw: i for i, fw in enumerate(plots.ordered(k[1] for k in keys))}
    keys.sort(key=lambda k: (first[k[0]], rank.get(k[1], len(rank))))
    out = []
    for model, fw in keys:
        g = step[(step["model"] == model) & (step["framework"] == fw)]
        out.append({"model": model, "framework": fw, "dataset": "",
                    **{col: g.loc[g["metric"] == metric, "value"].median()
                       for col, metric in STEP_METRICS.items()},
                    "parallel": bool(g["parallel"].any())})
    frame = pd.DataFrame(out, columns=["model", "framework", "dataset", *STEP_METRICS,
                                       "parallel"])
    torch = frame[frame["framework"] == "torch"].drop_duplicates("model").set_index("model")
    frame["vs_torch"] = frame["step_median"] / frame["model"].map(torch["step_median"])
    frame["memory_vs_torch"] = frame["memory"] / frame["model"].map(torch["memory"])
    best = frame["gemm"].max()
    frame["gemm_share"] = frame["gflops"] / best if best and best > 0 else math.nan
    return frame


def _ratio(value: object) -> str:
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.2f}"


def _bench_table(b: pd.DataFrame) -> Table:
    def timed(value: object, parallel: bool) -> str:
        text = fmt(value)
        return text + PARALLEL_MARK if parallel and text != "—" else text

    rows = tuple(
        (r.model, r.framework, fmt(r.gflop), timed(r.step_median, r.parallel),
         timed(r.step_p90, r.parallel), _ratio(r.vs_torch), timed(r.throughput, r.parallel),
         timed(r.inference, r.parallel), fmt(r.gflops),
         fmt(r.gemm_share * 100, 2) if math.isfinite(r.gemm_share) else "—", fmt(r.memory),
         _ratio(r.memory_vs_torch), fmt(r.memory_from_start))
        for r in b.itertuples(index=False))
    return Table(("model", "framework", "GFLOP / step", "step median (ms)", "step p90 (ms)",
                  "× PyTorch", "images / s", "inference (ms)", "GFLOP/s", "% of GEMM",
                  "step memory (MiB)", "memory × PyTorch", "memory from start (MiB)"), rows)


def _gemm_table(b: pd.DataFrame) -> Table | None:
    data = b[b["gemm"].notna()]
    if data.empty:
        return None
    rows = []
    for fw in plots.ordered(data["framework"]):
        rates = data.loc[data["framework"] == fw, "gemm"]
        rows.append((fw, fmt(rates.median()), fmt(rates.min()), fmt(rates.max()),
                     str(len(rates))))
    return Table(("framework", "GEMM GFLOP/s (median)", "min", "max", "cells"), tuple(rows))


def op_ratio_table(times: pd.DataFrame) -> Table | None:
    """Forward + backward ms per op and size, each framework's, and the ratios to PyTorch."""
    data = times[times["framework"] != "reference"]
    if data.empty:
        return None
    frameworks = plots.ordered(data["framework"])
    others = [fw for fw in frameworks if fw != "torch"] if "torch" in frameworks else []
    keys = list(dict.fromkeys(zip(data["op"], data["size"])))
    keys.sort(key=lambda k: (_op_rank(k[0]), plots.size_value(k[1])))
    rows = []
    for op, size in keys:
        at = data[(data["op"] == op) & (data["size"] == size)].set_index("framework")["ms"]
        ms = {fw: float(at[fw]) if fw in at.index else math.nan for fw in frameworks}
        rows.append((op, size, *(fmt(ms[fw]) for fw in frameworks),
                     *(_ratio(ms[fw] / ms["torch"]) if ms["torch"] > 0 else "—"
                       for fw in others)))
    names = {"numpy": "NumPy", "tensorflow": "TensorFlow"}
    return Table(("op", "size", *(f"{fw} (ms)" for fw in frameworks),
                  *(f"{names.get(fw, fw)} / PyTorch" for fw in others)), tuple(rows))


def _pools(blas: Any) -> str:
    """threadpoolctl's pools on one line: library, version, kernel architecture, threads."""
    if not isinstance(blas, list) or not blas:
        return "—"
    found = []
    for pool in blas:
        if isinstance(pool, dict):
            name = " ".join(str(pool[k]) for k in ("internal_api", "version", "architecture")
                            if pool.get(k))
            found.append(f"{name}: {pool.get('num_threads')} threads")
    return "; ".join(sorted(found)) or "—"


def _pair_or_dash(env: dict, first: str, second: str) -> str:
    if env.get(first) is None and env.get(second) is None:
        return "—"
    return f"{env.get(first)} / {env.get(second)}"


def thread_table(environment: Any) -> Table | None:
    """Every cell's thread settings, from environment.json (recorded in the cell process)."""
    cells = environment.get("cells") if isinstance(environment, dict) else None
    if not isinstance(cells, dict) or not cells:
        return None
    rows = []
    for cid, env in cells.items():
        if not isinstance(env, dict):
            rows.append((str(cid), "—", "—", "—", "—"))
            continue
        settings = env.get("thread_settings") or {}
        rows.append((str(cid), str(settings.get("threads", "—")), _pools(env.get("blas")),
                     _pair_or_dash(env, "torch_threads", "torch_interop_threads"),
                     _pair_or_dash(env, "tf_intra_op_threads", "tf_inter_op_threads")))
    return Table(("cell", "threads", "BLAS / OpenMP pools (threadpoolctl)",
                  "torch intra / inter-op", "TF intra / inter-op"), tuple(rows))


def bench_section(b: pd.DataFrame, times: pd.DataFrame, environment: Any,
                  images: dict[str, bytes]) -> list:
    blocks: list = [Heading(2, "Benchmarks")]
    if b.empty:
        return blocks + [Para(NO_DATA + " (no step-benchmark rows)")]
    best = b.loc[b["gemm"].idxmax()] if b["gemm"].notna().any() else None
    gemm = (f"{fmt(best['gemm'])} GFLOP/s, {best['framework']}'s" if best is not None
            else "not measured")
    blocks += [Para("One training step (forward, backward, SGD update) of each model at its "
                    "tutorial's input size, on one synthetic batch; every framework starts "
                    "from the same weights and sees the same batch, each in its own process "
                    "with the same thread count. Ratios are to PyTorch's cell of the same model "
                    "in this run (below 1: faster than PyTorch); % of GEMM is the step's "
                    f"GFLOP/s over the best float32 GEMM rate measured in the run ({gemm})."),
               _bench_table(b)]
    if b["parallel"].any():
        blocks.append(Para(f"{PARALLEL_MARK} measured while other cells ran beside it."))
    if "bench_steps" in images:
        blocks.append(Image("bench_steps", "training-step latency per model",
                            "Median training-step latency (ms) per model and framework; the "
                            "error bar reaches the 90th percentile."))
    blocks.append(Para(
        "Step memory is what the step allocates beyond what the process holds between steps. "
        "A framework that keeps its step's buffers in its own pool from one step to the next "
        "(TensorFlow's CPU allocator does) shows little of it there; *memory from start* "
        "counts such pools (and one-time costs such as TensorFlow's tracing) too."))
    gemm_table = _gemm_table(b)
    if gemm_table is not None:
        blocks += [Heading(3, "GEMM rate per framework"),
                   Para("Each framework's own float32 matmul of two square matrices (one per "
                        "step cell, the median of its repeats): the rate its BLAS reaches "
                        "here, and the limit the steps are measured against."), gemm_table]
    ratios = op_ratio_table(times)
    blocks.append(Heading(3, "Ops against PyTorch"))
    if ratios is None:
        blocks.append(Para(NO_DATA + " (no op rows)"))
    else:
        blocks += [Para("Forward + backward (ms, sum of the medians) per op and size, and each "
                        "framework's time over PyTorch's (below 1: faster than PyTorch):"),
                   ratios]
    threads = thread_table(environment)
    blocks.append(Heading(3, "Thread settings of every cell"))
    if threads is None:
        blocks.append(Para(NO_DATA + " (no per-cell environment in environment.json)"))
    else:
        blocks += [Para("As each cell's process recorded them after setting its threads: the "
                        "count the runner gave it, the BLAS and OpenMP pools (threadpoolctl: "
                        "library, version, the kernel architecture it picked, threads), and "
                        "PyTorch's and TensorFlow's intra-op / inter-op pools."), threads]
    return blocks


def openblas_warning(environment: Any) -> list:
    """A warning when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE was set for the run or a cell."""
    envs = [environment] if isinstance(environment, dict) else []
    cells = environment.get("cells") if isinstance(environment, dict) else None
    envs += [env for env in (cells or {}).values() if isinstance(env, dict)]
    found: dict[str, str] = {}
    for env in envs:
        found.update(env.get("openblas_variables") or {})
    if not found:
        return []
    settings = ", ".join(f"`{k}={v}`" for k, v in sorted(found.items()))
    return [Para(f"**Warning**: {settings} was set for this run. It makes OpenBLAS use the "
                 "kernel of that core type instead of the one it would pick for this CPU, "
                 "which can be much slower (the kernel each cell ran is under *architecture* "
                 "in its BLAS pools): NumPy timings may understate the machine. For a benchmark, "
                 "unset both variables in that command alone.")]


# ---------------------------------------------------------------------------------------------
# writers


def _md_inline(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_inline(c) for c in b.columns) + " |",
                     "| " + " | ".join("---" for _ in b.columns) + " |"]
            lines += ["| " + " | ".join(_md_inline(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.title}](plots/{b.name}.png)\n\n*{b.caption}*")
        elif isinstance(b, Pre):
            out.append("```\n" + b.text.replace("```", "'''") + "\n```")
    return "\n\n".join(out) + "\n"


def _html_inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                  lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', text)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1200px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccd; padding-bottom: 0.2em;
                                  margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccd; padding: 0.25em 0.55em; text-align: left;
         vertical-align: top; }
th { background: #e8ecf4; } tr:nth-child(even) td { background: #f7f8fb; }
td { font-variant-numeric: tabular-nums; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #555; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
code { background: #f2f2f6; padding: 0 0.2em; }
nav ul { columns: 2; } .meta { color: #555; }
"""


def to_html(blocks: list, title: str, images: dict[str, bytes]) -> str:
    toc = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    nav = "".join(f'<li><a href="#{_anchor(h.text)}">{html.escape(h.text)}</a></li>'
                  for h in toc)
    body = []
    for b in blocks:
        if b is (toc[0] if toc else None):
            body.append(f"<nav><ul>{nav}</ul></nav>")
        if isinstance(b, Heading):
            anchor = f' id="{_anchor(b.text)}"' if b.level == 2 else ""
            body.append(f"<h{b.level}{anchor}>{_html_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_html_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in b.items)
                        + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                           + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(images[b.name]).decode("ascii")
            body.append(f'<figure><img src="data:image/png;base64,{data}" '
                        f'alt="{html.escape(b.title)}"><figcaption>'
                        f"{_html_inline(b.caption)}</figcaption></figure>")
        elif isinstance(b, Pre):
            body.append(f"<pre>{html.escape(b.text)}</pre>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# ---------------------------------------------------------------------------------------------
# the whole report


def build(run_dir: str | os.PathLike) -> tuple[list, str, dict[str, bytes]]:
    """The report's blocks, its title and its plots (PNG bytes by name), from the saved files."""
    run_dir = Path(run_dir)
    results = _read_json(run_dir / "results.json", required=True)
    if not isinstance(results, dict):
        raise ValueError(f"{run_dir / 'results.json'}: expected a JSON object")
    environment = _read_json(run_dir / "environment.json", required=False)
    baseline = _read_json(run_dir / "baseline.json", required=False)

    rows = usable_rows(results)
    s = summary(results, rows)
    times = plots.op_times(rows)
    speedup = plots.reference_speedup(times)
    steps = has_steps(results, rows)
    # a bench run (step cells, no training) leaves out the training sections
    training = has_training(results, rows) or not steps
    bench = bench_summary(results, rows) if steps else None
    drawn = {"loss_curves": plots.curves(rows, "loss"),
             "accuracy_curves": plots.curves(rows, "accuracy"),
             "speed": plots.speed_bars(s),
             "bench_steps": None if bench is None else plots.speed_bars(bench),
             "op_scaling": plots.op_scaling(times),
             "reference_speedup": plots.speedup_bars(speedup),
             "parity": plots.parity(rows)}
    images = {name: png for name, png in drawn.items() if png is not None}

    run_id = str(results.get("run_id") or run_dir.name)
    title = f"cnn-rosetta {'comparison' if training else 'benchmark'}: run {run_id}"
    blocks: list = [
        Heading(1, title),
        Para(f"Run `{run_id}`, created {results.get('created') or 'at an unknown time'}; "
             f"rendered from `results.json` alone. Code side by side: "
             f"[code/index.html](code/index.html)."),
        *openblas_warning(environment),
        *measured_section(results),
        *(bench_section(bench, times, environment, images) if steps else ()),
        *(summary_section(results, s) if training else ()),
        *problems_section(results),
        *(curves_section(images) + speed_section(images) if training else ()),
        *ops_section(times, speedup, images, op_rates(rows)),
        *(parity_section(images, plots.parity_floor(rows))
          + baseline_section(s, baseline) if training else ()),
        *definitions_section(train=training, steps=steps),
        *environment_section(environment),
    ]
    return blocks, title, images


def render(run_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.md, plots/*.png, report.html and code/*.html into ``run_dir``.

    Returns ``{path relative to run_dir: absolute path}`` of every file written. Reads only
    results.json, environment.json and baseline.json (and the project's source files for the
    code pages); runs and imports no backend.
    """
    run_dir = Path(run_dir).resolve()
    blocks, title, images = build(run_dir)
    markdown = to_markdown(blocks)
    page = to_html(blocks, title, images)
    code = codepages.pages()

    written: dict[str, Path] = {}
    for name, png in images.items():
        written[f"plots/{name}.png"] = write_bytes_atomic(run_dir / "plots" / f"{name}.png",
                                                           png)
    for name, text in code.items():
        written[f"code/{name}"] = write_text_atomic(run_dir / "code" / name, text)
    written["report.md"] = write_text_atomic(run_dir / "report.md", markdown)
    written["report.html"] = write_text_atomic(run_dir / "report.html", page)
    for stale in (run_dir / "plots").glob("*.png"):  # a plot this run's rows no longer have
        if f"plots/{stale.name}" not in written:
            stale.unlink()
    return written
