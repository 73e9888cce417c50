"""Compare a run's results with an earlier run's (``python -m reports run --baseline PATH``).

Matched by (framework, model, dataset, seed) train cell. Flagged as regressions:

- an accuracy drop: the final test accuracy lower than the baseline's by more than
  ``max_accuracy_drop`` (absolute fraction, default 0.02);
- a slowdown: the median step latency or the median epoch time more than ``max_slowdown``
  times the baseline's (default 1.5). Times are compared as ratios because machines differ;
  a pair where only one of the two runs timed cells side by side (``parallel``) is compared
  but marked, since competing cells slow each other;
- with ``fail_on_failed_cells``: a cell that failed in this run (it measured nothing).

A comparison is *vacuous* when no pair was compared, and *partial* when baseline cells have
no ok cell in this run (a dropped framework or model, a failed cell): both are reported, and
``--check`` fails on them (``passed``) unless ``cells`` (``--baseline-cells GLOBS``) narrows
the baseline to the cells meant. The baseline is checked like any saved run before the run
starts (``load_results``, reports/runfile.py).

``baseline.json`` (written by the runner) has the baseline's own ``run_id``, ``created``,
``cells`` and per-cell ``rows`` (in results.json's format, without the per-step rows), so the
renderer can summarise it like a run, plus ``comparison``: the thresholds, every compared
pair and the regressions.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any

DEFAULT_MAX_ACCURACY_DROP = 0.02
DEFAULT_MAX_SLOWDOWN = 1.5
KEY_FIELDS = ("framework", "model", "dataset", "seed")
PER_STEP = ("step_loss", "parity_loss_dev")


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """A results.json (or the run directory holding one), checked (reports/runfile.py):
    a bad one raises RunFileError (a ValueError) naming the file, before any cell runs."""
    from .runfile import load_results as load

    return load(path, "--baseline")


def _ok_cells(results: dict[str, Any]) -> set[str]:
    cells = results.get("cells") or []
    if not cells:  # a bare list of rows: trust every row
        return {row.get("cell") for row in results["rows"]}
    return {c.get("cell_id") for c in cells if c.get("status") == "ok"}


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summarise(results: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """Per train cell key: final test accuracy, median step latency, median epoch seconds,
    and whether it ran beside other cells."""
    ok = _ok_cells(results)
    out: dict[tuple, dict[str, Any]] = {}
    for row in results["rows"]:
        if row.get("kind") != "train" or row.get("cell") not in ok:
            continue
        entry = out.setdefault(tuple(row.get(k) for k in KEY_FIELDS),
                               {"accuracy": {}, "step": [], "epoch": [], "parallel": False,
                                "cell": row.get("cell")})
        entry["parallel"] = entry["parallel"] or bool(row.get("parallel"))
        metric, value = row.get("metric"), row.get("value")
        if value is None:
            continue
        if metric == "test_accuracy":
            entry["accuracy"][row.get("epoch") or 0] = value
        elif metric == "step_latency_median":
            entry["step"].append(value)
        elif metric == "epoch_seconds":
            entry["epoch"].append(value)
    return {key: {"test_accuracy": e["accuracy"][max(e["accuracy"])] if e["accuracy"] else None,
                  "step_latency_median": _median(e["step"]),
                  "epoch_seconds": _median(e["epoch"]), "parallel": e["parallel"],
                  "cell": e["cell"]}
            for key, e in out.items()}


def compare(current: dict[str, Any], baseline: dict[str, Any], *,
            max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
            max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
            fail_on_failed_cells: bool = False,
            cells: list[str] | None = None) -> dict[str, Any]:
    """The comparison: ``{"thresholds", "cells", "pairs", "regressions", "missing",
    "failed_cells", "vacuous", "partial"}``.

    A pair: the key fields, ``metric``, ``baseline``, ``current``, ``change`` (difference
    for accuracy, ratio for times), ``regression`` (bool), ``parallel_mismatch`` (bool).
    ``cells``: glob patterns of the baseline cell ids to compare (None: all). ``missing``:
    the baseline cells (of those) this run has no ok cell for; ``vacuous``: nothing was
    compared; ``partial``: something is missing.
    """
    now, before = summarise(current), summarise(baseline)
    if cells is not None:
        before = {key: e for key, e in before.items()
                  if any(fnmatch.fnmatchcase(str(e["cell"]), p) for p in cells)}
    pairs = []
    for key in sorted(set(now) & set(before), key=str):
        a, b = now[key], before[key]
        mismatch = a["parallel"] != b["parallel"]
        for metric in ("test_accuracy", "step_latency_median", "epoch_seconds"):
            if a[metric] is None or b[metric] is None:
                continue
            if metric == "test_accuracy":
                change = a[metric] - b[metric]
                regression = change < -max_accuracy_drop
            else:
                change = a[metric] / b[metric] if b[metric] > 0 else None
                regression = change is not None and change > max_slowdown
            pairs.append({**dict(zip(KEY_FIELDS, key)), "metric": metric,
                          "baseline": b[metric], "current": a[metric], "change": change,
                          "regression": bool(regression), "parallel_mismatch": mismatch})
    failed = sorted(c.get("cell_id") for c in current.get("cells") or []
                    if c.get("status") == "failed")
    regressions = [p for p in pairs if p["regression"]]
    if fail_on_failed_cells:
        regressions += [{"cell": cell, "metric": "status", "current": "failed",
                         "regression": True} for cell in failed]
    missing = [dict(zip(KEY_FIELDS, key)) for key in sorted(set(before) - set(now), key=str)]
    return {"thresholds": {"max_accuracy_drop": max_accuracy_drop,
                           "max_slowdown": max_slowdown},
            "cells": cells, "pairs": pairs, "regressions": regressions, "missing": missing,
            "failed_cells": failed, "vacuous": not pairs, "partial": bool(missing)}


def passed(comparison: dict[str, Any]) -> bool:
    """What ``--check`` demands: no regression, something compared, nothing missing."""
    return not (comparison["regressions"] or comparison["vacuous"] or comparison["partial"])


def baseline_document(baseline: dict[str, Any], source: str | os.PathLike,
                      comparison: dict[str, Any]) -> dict[str, Any]:
    """What the runner writes to baseline.json (see the module docstring)."""
    return {"run_id": baseline.get("run_id"), "created": baseline.get("created"),
            "source": str(source), "config": baseline.get("config"),
            "cells": [{k: v for k, v in c.items() if k != "rows"}
                      for c in baseline.get("cells") or []],
            "rows": [r for r in baseline["rows"] if r.get("metric") not in PER_STEP],
            "comparison": comparison}


def summary_lines(comparison: dict[str, Any]) -> list[str]:
    """A short human summary: counts, then one line per regression."""
    t = comparison["thresholds"]
    lines = [f"baseline: {len(comparison['pairs'])} comparisons, "
             f"{len(comparison['regressions'])} regression(s) (accuracy drop > "
             f"{t['max_accuracy_drop']:g}, slowdown > {t['max_slowdown']:g}x)"]
    for r in comparison["regressions"]:
        if r["metric"] == "status":
            lines.append(f"  REGRESSION {r['cell']}: failed")
            continue
        what = "-".join(str(r[k]) for k in KEY_FIELDS)
        if r["metric"] == "test_accuracy":
            lines.append(f"  REGRESSION {what}: test accuracy {r['baseline']:.4f} -> "
                         f"{r['current']:.4f} ({r['change']:+.4f})")
        else:
            flag = " (parallel in only one run)" if r["parallel_mismatch"] else ""
            lines.append(f"  REGRESSION {what}: {r['metric']} {r['baseline']:.4g} -> "
                         f"{r['current']:.4g} ({r['change']:.2f}x){flag}")
    if comparison["vacuous"]:
        lines.append("  VACUOUS: no baseline cell matched an ok cell of this run; nothing was "
                     "compared")
    if comparison["missing"]:
        names = ", ".join("-".join(str(m[k]) for k in KEY_FIELDS)
                          for m in comparison["missing"][:5])
        more = "" if len(comparison["missing"]) <= 5 else ", ..."
        lines.append(f"  PARTIAL: {len(comparison['missing'])} baseline cell(s) have no ok "
                     f"cell in this run ({names}{more}); narrow the baseline with "
                     "--baseline-cells to compare a subset on purpose")
    return lines
