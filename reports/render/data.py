"""The run directory's saved results as tables: reading, cleaning, and the numbers per group.

Everything here works on ``results.json`` as docs/results.md describes it and tolerates what an
older run or a hand-edited file may hold: absent keys, null, the strings "nan" / "inf" / "-inf"
or NaN literals where a number was expected (all read as missing), values of the wrong type.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import plots

FIELDS = ("cell", "kind", "framework", "model", "dataset", "seed", "op", "size", "direction",
          "epoch", "step", "metric", "value", "unit", "parallel")
TEXT_FIELDS = ("cell", "kind", "framework", "model", "dataset", "op", "size", "direction",
               "metric", "unit")
KEYS = ["framework", "model", "dataset"]
PARALLEL_MARK = "†"  # a timing measured beside other cells
LOADED_MARK = "‡"  # a timing measured while the machine's load reached its thread count
NO_DATA = "No data."
TIMINGS = ("epoch_seconds", "step_latency_median", "step_latency_p90", "throughput",
           "inference_latency")


def read_json(path: Path, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: not found (a run directory of `python -m reports "
                                    f"run` holds results.json, see docs/results.md)")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def number(value: object) -> float | None:
    """A finite float, or None for null, NaN, ±inf (or their strings) and non-numbers."""
    if isinstance(value, bool):
        return None
    try:
        v = float(value)  # accepts "nan", "inf", "-inf", "1e-3"
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def spec(cell: object) -> dict:
    value = cell.get("spec") if isinstance(cell, dict) else None
    return value if isinstance(value, dict) else {}


def cells(results: dict) -> list[dict]:
    found = results.get("cells")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def loaded_cells(results: dict) -> set[str]:
    """Ids of the cells whose record says the machine was loaded while they ran."""
    return {str(c.get("cell_id")) for c in cells(results) if c.get("loaded") is True}


def run_load(results: dict) -> dict | None:
    """The run's load record (threads, start, max, loaded), or None when it has none."""
    load = results.get("load")
    if not isinstance(load, dict):
        return None
    threads = number(load.get("threads"))
    return {"threads": None if threads is None else int(threads),
            "start": number(load.get("start")), "max": number(load.get("max")),
            "loaded": load.get("loaded") is True}


def rows_frame(results: dict) -> pd.DataFrame:
    """The tidy rows as a DataFrame with every documented column (absent ones as null), plus
    ``loaded`` (the row's cell ran under load)."""
    found = results.get("rows")
    frame = pd.DataFrame([r for r in found if isinstance(r, dict)]
                         if isinstance(found, list) else [])
    for name in FIELDS:
        if name not in frame:
            frame[name] = None
    value = pd.to_numeric(frame["value"].map(number), errors="coerce").astype(float)
    frame["value"] = value.where(np.isfinite(value))
    for name in ("epoch", "step", "seed"):
        frame[name] = pd.to_numeric(frame[name].map(number), errors="coerce")
    frame["parallel"] = frame["parallel"].map(lambda v: v is True)
    for name in TEXT_FIELDS:
        frame[name] = frame[name].map(
            lambda v: v if v is None or isinstance(v, str) else
            (None if isinstance(v, float) and math.isnan(v) else str(v))).astype(object)
    loaded = loaded_cells(results)
    frame["loaded"] = frame["cell"].map(lambda c: c in loaded)
    return frame


def usable_rows(results: dict) -> pd.DataFrame:
    """Rows of cells that finished: a failed cell's partial rows would pass for results."""
    frame = rows_frame(results)
    status = {c.get("cell_id"): c.get("status") for c in cells(results)}
    bad = frame["cell"].map(lambda cell: status.get(cell) in ("failed", "skipped"))
    return frame[~bad.astype(bool)].reset_index(drop=True)


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: about ``digits`` significant figures, '—' for none."""
    v = number(value)
    if v is None:
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    if abs(v) < 10 ** -(digits - 1):
        return f"{v:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def marked(value: object, parallel: bool, loaded: bool, digits: int = 3) -> str:
    """A timing with † when it ran beside other cells and ‡ when the machine was loaded."""
    text = fmt(value, digits)
    if text == "—":
        return text
    return text + (PARALLEL_MARK if parallel else "") + (LOADED_MARK if loaded else "")


def mean_std(values: pd.Series) -> str:
    values = values.dropna() * 100
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def train_groups(results: dict, rows: pd.DataFrame) -> list[tuple]:
    """(framework, model, dataset) of every train cell, in the run's order, then any others."""
    keys = [tuple(spec(c).get(k) for k in KEYS) for c in cells(results)
            if spec(c).get("kind") == "train"]
    train = rows[rows["kind"] == "train"]
    keys += list(zip(train["framework"], train["model"], train["dataset"]))
    keys = [tuple(None if v is None else str(v) for v in k) for k in keys]
    keys = list(dict.fromkeys(keys))
    rank = {fw: i for i, fw in enumerate(plots.ordered(k[0] for k in keys))}
    first = {k: i for i, k in enumerate(dict.fromkeys((k[1], k[2]) for k in keys))}
    return sorted(keys, key=lambda k: (first[(k[1], k[2])], rank.get(k[0], len(rank))))


def _group_cells(results: dict, key: tuple) -> list[dict]:
    return [c for c in cells(results) if spec(c).get("kind") == "train"
            and tuple(None if spec(c).get(k) is None else str(spec(c).get(k))
                      for k in KEYS) == key]


def _status_counts(group: list[dict]) -> str:
    if not group:
        return "—"
    counts = {s: sum(c.get("status") == s for c in group) for s in ("ok", "failed", "skipped")}
    text = f"{counts['ok']}/{len(group)} ok"
    extra = [f"{n} {s}" for s, n in counts.items() if s != "ok" and n]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _one_value(group: list[dict], field: str) -> object:
    found = {str(spec(c).get(field)) for c in group if spec(c).get(field) is not None}
    return found.pop() if len(found) == 1 else None


SUMMARY_COLUMNS = ["framework", "model", "dataset", "seeds", "accuracy", "accuracy_mean",
                   "accuracy_spread", "epoch_seconds", "step_median", "step_p90", "throughput",
                   "peak_rss", "loss_dev", "weights_dev", "parallel", "loaded", "dtype",
                   "batch_size"]


def summary(results: dict, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per framework × model × dataset with the numbers the report tabulates (raw).

    ``throughput`` is batch_size / ``step_median`` (images per second), so that the two columns
    agree; without a batch size in the cells' specs, the median of the cells' throughput rows.
    """
    rows = usable_rows(results) if rows is None else rows
    train = rows[rows["kind"] == "train"]
    out = []
    for key in train_groups(results, rows):
        g = train[(train["framework"] == key[0]) & (train["model"] == key[1])
                  & (train["dataset"] == key[2])]
        group = _group_cells(results, key)

        def metric(name: str, g: pd.DataFrame = g) -> pd.Series:
            return g.loc[g["metric"] == name, "value"].dropna()

        acc = g[(g["metric"] == "test_accuracy") & g["value"].notna()]
        final = acc.sort_values("epoch").groupby("seed", dropna=False).tail(1)["value"]
        timing = g["metric"].isin(TIMINGS)
        step_median = metric("step_latency_median").median()
        batch = number(_one_value(group, "batch_size"))
        if batch:  # the table's images / s agrees with its step median, or both are missing
            throughput = batch * 1e3 / step_median if number(step_median) else None
        else:
            throughput = metric("throughput").median()
        out.append({
            "framework": key[0], "model": key[1], "dataset": key[2],
            "seeds": _status_counts(group),
            "accuracy": mean_std(final), "accuracy_mean": final.mean() if len(final) else None,
            "accuracy_spread": final.std(ddof=1) if len(final) > 1 else None,
            "epoch_seconds": metric("epoch_seconds").median(),
            "step_median": step_median,
            "step_p90": metric("step_latency_p90").median(),
            "throughput": throughput,
            "peak_rss": metric("peak_rss").max(),
            "loss_dev": metric("parity_loss_max_dev").max(),
            "weights_dev": metric("parity_weights_max_dev").max(),
            "parallel": bool(g.loc[timing, "parallel"].any()),
            "loaded": bool(g.loc[timing, "loaded"].any()),
            "dtype": _one_value(group, "dtype"), "batch_size": batch,
        })
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def has_kind(results: dict, rows: pd.DataFrame, kind: str) -> bool:
    return (any(spec(c).get("kind") == kind for c in cells(results))
            or bool((rows["kind"] == kind).any()))


def has_steps(results: dict, rows: pd.DataFrame) -> bool:
    return has_kind(results, rows, "step")


def has_training(results: dict, rows: pd.DataFrame) -> bool:
    return has_kind(results, rows, "train")


# bench_summary column -> the step cell's metric
STEP_METRICS = {"gflop": "step_gflop", "step_median": "step_latency_median",
                "step_p90": "step_latency_p90", "throughput": "throughput",
                "inference": "inference_latency", "inference_p90": "inference_latency_p90",
                "gflops": "step_gflops", "memory": "step_peak_memory",
                "memory_from_start": "step_peak_memory_from_start", "gemm": "gemm_gflops"}


def bench_summary(results: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model × framework of the step cells (raw numbers, STEP_METRICS), with
    ``vs_torch`` and ``memory_vs_torch`` (this over PyTorch's cell of the same model) and
    ``gemm_share`` (GFLOP/s over the highest GEMM rate of the run)."""
    step = rows[rows["kind"] == "step"]
    keys = [(spec(c).get("model"), spec(c).get("framework")) for c in cells(results)
            if spec(c).get("kind") == "step"]
    keys = [tuple(None if v is None else str(v) for v in k) for k in keys]
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
                    "parallel": bool(g["parallel"].any()), "loaded": bool(g["loaded"].any())})
    frame = pd.DataFrame(out, columns=["model", "framework", "dataset", *STEP_METRICS,
                                       "parallel", "loaded"])
    torch = frame[frame["framework"] == "torch"].drop_duplicates("model").set_index("model")
    frame["vs_torch"] = frame["step_median"] / frame["model"].map(torch["step_median"])
    frame["memory_vs_torch"] = frame["memory"] / frame["model"].map(torch["memory"])
    best = frame["gemm"].max()
    frame["gemm_share"] = frame["gflops"] / best if best and best > 0 else math.nan
    return frame
