"""The benchmark's ratios over its rounds, and its targets: ``python -m reports bench --check``.

A bench run times every model in interleaved rounds (reports/bench.py): in each round one step
cell per framework, each in its own process. From the saved results this module computes, per
thread count and model, the subject framework's figure over the reference's (NumPy over
PyTorch, issue 12):

- ``step`` and ``predict``: each framework's median over every timed training step (predict
  call) of every round, and the ratio of the two medians; its spread is the per-round ratios
  (each round's NumPy median over the same round's PyTorch median): their median, min and max.
- ``memory``: the step's peak memory growth (``step_peak_memory``), each framework's median
  over the rounds, and the ratio; the spread as above.

The targets are data, in reports/bench_targets.json: per metric a ``default`` and per-model
overrides (``models``), so a model added later falls under the default; the thread counts they
hold at; and ``loaded_other_cpu``, the cores' worth of other processes' CPU time (averaged over
a cell's measuring window) above which a cell counts as loaded. A target is *met* only when the
ratio is at or below it and none of the cells it depends on was loaded (by that rule or by the
runner's load-average rule, reports/loadwatch.py); otherwise it is *missed*, *unverified* (a
cell loaded or its load not measured) or *not measured* (a framework skipped, failed or absent,
or no run at that thread count). ``--check`` exits 0 only when every target is met.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .loadwatch import CLOCK_TICKS, other_cpu_loaded

TARGETS_PATH = Path(__file__).with_name("bench_targets.json")
# metric -> (the per-sample rows of a step cell, the cell's one-value row, what it is)
METRICS: dict[str, tuple[str | None, str, str]] = {
    "step": ("step_time", "step_latency_median", "training step, median ms"),
    "predict": ("inference_time", "inference_latency", "predict, median ms"),
    "memory": (None, "step_peak_memory", "step peak memory, MiB"),
}
RESOLUTION = 2.0 / CLOCK_TICKS  # seconds an other-CPU reading may be off by (loadwatch.py)


class TargetsError(ValueError):
    """The targets file is missing, unreadable or not as documented."""


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise TargetsError(f"{where}: got {value!r}, expected a positive number")
    return float(value)


def validate_targets(data: Any, source: str = "targets") -> dict[str, Any]:
    """``data`` (the parsed targets file) checked; every error names the key, what it got and
    what it expected."""
    if not isinstance(data, dict):
        raise TargetsError(f"{source}: got {type(data).__name__}, expected a JSON object")
    known = {"source", "subject", "reference", "threads", "targets", "loaded_other_cpu"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TargetsError(f"{source}: got unknown key(s) {unknown}, expected only "
                           f"{sorted(known)}")
    for key in ("subject", "reference"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise TargetsError(f"{source}: {key}: got {data.get(key)!r}, expected a framework "
                               "name (numpy, torch, tensorflow)")
    if data["subject"] == data["reference"]:
        raise TargetsError(f"{source}: subject and reference: got {data['subject']!r} for "
                           "both, expected two different frameworks")
    threads = data.get("threads")
    if (not isinstance(threads, list) or not threads or len(set(map(str, threads)))
            != len(threads) or any(isinstance(t, bool) or not isinstance(t, int) or t < 1
                                   for t in threads)):
        raise TargetsError(f"{source}: threads: got {threads!r}, expected a non-empty list of "
                           "distinct positive integers")
    targets = data.get("targets")
    if not isinstance(targets, dict) or not targets:
        raise TargetsError(f"{source}: targets: got {targets!r}, expected an object metric -> "
                           f"{{'default': ratio, 'models': {{model: ratio}}}} with metrics "
                           f"from {sorted(METRICS)}")
    for metric, rule in targets.items():
        where = f"{source}: targets.{metric}"
        if metric not in METRICS:
            raise TargetsError(f"{where}: got an unknown metric, expected one of "
                               f"{sorted(METRICS)}")
        if not isinstance(rule, dict) or set(rule) - {"default", "models"} or \
                "default" not in rule:
            raise TargetsError(f"{where}: got {rule!r}, expected {{'default': ratio, "
                               "'models': {model: ratio}}")
        _positive(rule["default"], f"{where}.default")
        models = rule.get("models", {})
        if not isinstance(models, dict):
            raise TargetsError(f"{where}.models: got {models!r}, expected an object model -> "
                               "ratio")
        for model, ratio in models.items():
            _positive(ratio, f"{where}.models.{model}")
    threshold = data.get("loaded_other_cpu")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
            0 <= threshold < 1e6):
        raise TargetsError(f"{source}: loaded_other_cpu: got {threshold!r}, expected a number "
                           ">= 0 (cores' worth of other processes' CPU time, e.g. 0.05)")
    return data


def load_targets(path: str | os.PathLike = TARGETS_PATH) -> dict[str, Any]:
    """The targets file read and checked (TargetsError naming the file and the key)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise TargetsError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise TargetsError(f"{path}: got invalid JSON ({err}), expected a JSON object") from None
    return validate_targets(data, str(path))


def target_for(targets: dict[str, Any], metric: str, model: str) -> float:
    rule = targets["targets"][metric]
    return float(rule.get("models", {}).get(model, rule["default"]))


# ---------------------------------------------------------------------------------------------
# the step cells of saved results


def step_cells(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's step cells as flat records: framework, model, threads, round, position,
    status, note, ``samples`` (metric -> the values to take the median of), other_cpu,
    window, load_average, ``marked`` (the runner's load-average mark)."""
    rows: dict[str, list[dict]] = {}
    for row in results.get("rows") or []:
        if isinstance(row, dict):
            rows.setdefault(str(row.get("cell")), []).append(row)
    threads = (results.get("config") or {}).get("threads")
    out = []
    for rec in results.get("cells") or []:
        spec = rec.get("spec") if isinstance(rec, dict) else None
        if not isinstance(spec, dict) or spec.get("kind") != "step":
            continue
        mine = rows.get(str(rec.get("cell_id")), [])

        def values(metric: str, mine: list = mine) -> list[float]:
            found = [r.get("value") for r in mine if r.get("metric") == metric]
            return [float(v) for v in found if isinstance(v, (int, float))
                    and not isinstance(v, bool) and math.isfinite(v)]

        samples = {}
        for metric, (per_sample, one, _) in METRICS.items():
            samples[metric] = (values(per_sample) if per_sample else []) or values(one)
        single = {m: (values(m) or [None])[0] for m in ("other_cpu", "window", "load_average")}
        out.append({"cell_id": rec.get("cell_id"), "framework": spec.get("framework"),
                    "model": spec.get("model"), "threads": spec.get("threads", threads),
                    "round": spec.get("round"), "position": spec.get("position"),
                    "status": rec.get("status"), "note": rec.get("note"),
                    "error": rec.get("error"), "samples": samples, **single,
                    "marked": rec.get("loaded") is True})
    return out


def cell_load(cell: dict[str, Any], threshold: float) -> str | None:
    """Why ``cell`` counts as loaded (None: it does not).

    The other processes' CPU time over the cell's own measuring window decides where it was
    measured. The runner's load-average mark decides only where it was not: the 1-minute
    average lags by construction, and a bench run started right after another (``--check``'s
    1-thread run after its 2-thread one) finds the first run's own cells still in it, which
    the sampler of the new run cannot subtract (it marked every simple_cnn cell of such a
    1-thread run loaded on a quiet machine, where the CPU time of other processes was 0).
    """
    loaded = other_cpu_loaded(cell["other_cpu"], cell["window"], threshold, RESOLUTION)
    if loaded is None:
        if cell["marked"]:
            return "the other processes' load average reached its threads"
        return "the other processes' CPU time was not measured"
    if loaded:
        return (f"other processes used {cell['other_cpu'] / cell['window']:.2f} cores "
                f"(threshold {threshold:g})")
    return None


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.median(values)) if values else math.nan


def _absent(cells: list[dict], framework: str, frameworks: list[str]) -> str | None:
    """Why ``framework`` has no usable cell among ``cells`` (None: it has)."""
    mine = [c for c in cells if c["framework"] == framework]
    if not mine:
        return f"no {framework} cells (the run's frameworks: {', '.join(frameworks) or 'none'})"
    bad = [c for c in mine if c["status"] != "ok"]
    if bad:
        c = bad[0]
        why = c["note"] if c["status"] == "skipped" else (
            (str(c["error"] or "").strip().splitlines() or ["?"])[-1][:160])
        return f"{framework} {c['status']}: {why}"
    return None


def compare(cells: list[dict], metric: str, subject: str, reference: str) -> dict[str, Any]:
    """The ratio of ``metric`` (subject over reference) over ``cells`` (one model, one thread
    count) and its spread over the rounds, or ``{"reason"}`` when it cannot be computed."""
    frameworks = list(dict.fromkeys(str(c["framework"]) for c in cells))
    for fw in (subject, reference):
        why = _absent(cells, fw, frameworks)
        if why:
            return {"reason": why}
    by_round: dict[str, dict[Any, list[float]]] = {subject: {}, reference: {}}
    for c in cells:
        if c["framework"] in by_round:
            by_round[c["framework"]].setdefault(c["round"], []).extend(c["samples"][metric])
    pooled = {fw: [v for vs in by_round[fw].values() for v in vs] for fw in by_round}
    # times: the median of every timed step of every round; memory (one value per cell): the
    # median over the rounds
    mine, theirs = _median(pooled[subject]), _median(pooled[reference])
    if not (math.isfinite(mine) and math.isfinite(theirs)):
        return {"reason": f"no {METRICS[metric][1]} values"}
    if theirs <= 0:
        return {"reason": f"{reference}'s {METRICS[metric][1]} is {theirs:g}: no ratio"}
    per_round = [_median(by_round[subject][r]) / _median(by_round[reference][r])
                 for r in by_round[subject] if r in by_round[reference]
                 and _median(by_round[reference][r]) > 0]
    per_round = [x for x in per_round if math.isfinite(x)]
    return {"subject": mine, "reference": theirs, "ratio": mine / theirs,
            "per_round": per_round, "rounds": len(per_round),
            "spread": (_median(per_round), min(per_round), max(per_round)) if per_round
            else None}


def evaluate(runs: list[dict[str, Any]], targets: dict[str, Any], *,
             all_threads: bool = True) -> list[dict[str, Any]]:
    """One verdict per target (model x metric x thread count) over the runs' results:
    ``{"model", "metric", "threads", "target", "status", "reason", **compare(...)}``, status
    met | missed | unverified | not measured. ``all_threads``: also the targets' thread
    counts no run measured (not measured); False: only the measured ones (the report)."""
    cells = [c for results in runs for c in step_cells(results)]
    subject, reference = targets["subject"], targets["reference"]
    threshold = float(targets["loaded_other_cpu"])
    models = list(dict.fromkeys(str(c["model"]) for c in cells))
    measured = list(dict.fromkeys(int(c["threads"]) for c in cells
                                  if isinstance(c["threads"], int)))
    wanted = list(targets["threads"]) if all_threads else []
    thread_counts = list(dict.fromkeys([*wanted, *measured]))
    verdicts = []
    for threads in thread_counts:
        for model in models:
            mine = [c for c in cells if c["model"] == model and c["threads"] == threads]
            for metric in targets["targets"]:
                target = target_for(targets, metric, model)
                verdict = {"model": model, "metric": metric, "threads": threads,
                           "target": target, "reason": None}
                if not mine:
                    verdict.update(status="not measured", reason=(
                        f"no {model} cells at {threads} thread(s) in this check; `bench "
                        "--check` without --threads runs every thread count of the targets"))
                    verdicts.append(verdict)
                    continue
                verdict.update(compare(mine, metric, subject, reference))
                if "ratio" not in verdict:
                    verdict["status"] = "not measured"
                    verdicts.append(verdict)
                    continue
                loaded = [(c["cell_id"], why) for c in mine
                          if c["framework"] in (subject, reference)
                          and (why := cell_load(c, threshold))]
                verdict["loaded"] = loaded
                if loaded:
                    verdict["status"] = "unverified"
                    verdict["reason"] = (f"{len(loaded)} of its {len(mine)} cells loaded; "
                                         f"{loaded[0][0]}: {loaded[0][1]}")
                else:
                    verdict["status"] = "met" if verdict["ratio"] <= target else "missed"
                verdicts.append(verdict)
    return verdicts


def spread_text(v: dict[str, Any]) -> str:
    s = v.get("spread")
    if not s:
        return "[no rounds to pair]"
    return f"[rounds: median {s[0]:.2f}, {s[1]:.2f}-{s[2]:.2f}, {v['rounds']} rounds]"


def verdict_line(v: dict[str, Any], subject: str, reference: str) -> str:
    head = (f"{v['model']} {v['metric']} at {v['threads']} thread"
            f"{'' if v['threads'] == 1 else 's'}: ")
    ratio = (f"{subject}/{reference} {v['ratio']:.2f} {spread_text(v)}" if "ratio" in v
             else f"{subject}/{reference} -")
    status = {"unverified": "unverified: machine loaded"}.get(v["status"], v["status"])
    tail = f" ({v['reason']})" if v.get("reason") else ""
    return f"{head}{ratio}, target <= {v['target']:.2f}: {status}{tail}"


def check(runs: list[dict[str, Any]], targets: dict[str, Any]) -> tuple[list[str], int]:
    """(the lines ``--check`` prints, its exit status: 0 only when every target is met)."""
    verdicts = evaluate(runs, targets)
    lines = [verdict_line(v, targets["subject"], targets["reference"]) for v in verdicts]
    counts = {s: sum(v["status"] == s for v in verdicts)
              for s in ("met", "missed", "unverified", "not measured")}
    code = 0 if verdicts and counts["met"] == len(verdicts) else 1
    lines.append(f"check: {counts['met']} met, {counts['missed']} missed, "
                 f"{counts['unverified']} unverified (machine loaded), "
                 f"{counts['not measured']} not measured, of {len(verdicts)} targets "
                 f"({targets.get('source', 'the targets file')}): exit {code}")
    return lines, code
