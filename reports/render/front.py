"""What the report opens with: the load banner and the verdict, in sentences computed from the
results (issue 10, points 13 and 14)."""

from __future__ import annotations

import pandas as pd

from .data import LOADED_MARK, PARALLEL_MARK, cells, fmt, loaded_cells, number, run_load
from .doc import Banner, Bullets, Para, Section, code, link, strong

# The training-parity tolerances (parity_tests/test_training_parity.py: RUN_TOL_FLOAT32 and
# RUN_TOL_FLOAT64, the largest normalised deviation of a run's losses and final weights from
# the NumPy backend's). Duplicated, because the report must not import the test suite;
# parity_tests/test_render.py checks that the two stay equal.
PARITY_TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def load_banner(results: dict) -> list:
    """A banner when the machine was loaded during the run (results.json → load, or cells
    whose record says ``loaded``); nothing for an unloaded run or one that did not record it."""
    load = run_load(results)
    loaded = loaded_cells(results)
    if not (load and load["loaded"]) and not loaded:
        return []
    n = len(loaded)
    marked = (f"the timings of the {n} cell(s) that ran under that load are marked "
              f"{LOADED_MARK}" if n else "no cell's record says which of them it slowed, "
              "so none is marked, but all")
    if load and load["loaded"]:
        start = ("was not recorded at the start" if load["start"] is None
                 else f"was {load['start']:.2f} at the start")
        peak = ("" if load["max"] is None
                else f" and other processes' load up to {load['max']:.2f} while it ran")
        threads = "?" if load["threads"] is None else str(load["threads"])
        what = (f"the 1-minute load average {start}{peak}, at or above the {threads} "
                "thread(s) the run kept busy")
    else:
        what = "some cells ran while the other processes' load was at or above their thread count"
    return [Banner(strong("The machine was loaded during this run"), f": {what}. Other work "
                   f"competed for the cores: {marked} and are unreliable (the accuracy and "
                   "parity numbers are not affected).")]


def tolerance_text(tol: float) -> str:
    return f"{tol:.0e}".replace("e-0", "e-")  # 1e-4, not 0.0001


def _tolerance(dtype: object) -> tuple[str, float]:
    name = str(dtype) if str(dtype) in PARITY_TOLERANCE else "float32"
    return name, PARITY_TOLERANCE[name]


def agreement(s: pd.DataFrame) -> list:
    """Whether the frameworks agree with the NumPy backend, worst deviation against its
    tolerance."""
    found = []
    for row in s.itertuples(index=False):
        dtype, tol = _tolerance(row.dtype)
        for what, value in (("loss curve", row.loss_dev), ("final weights", row.weights_dev)):
            v = number(value)
            if v is not None and row.framework != "numpy":
                found.append((v / tol, v, tol, dtype, what, row.framework, row.model,
                              row.dataset))
    if not found:
        return [Para(strong("Agreement not measured"), ": parity needs the NumPy backend and "
                     "another framework trained on the same model, dataset and seed.")]
    over = sorted((f for f in found if f[0] > 1), reverse=True)
    worst = {what: max((f for f in found if f[4] == what), default=None)
             for what in ("loss curve", "final weights")}
    parts = [f"{what} {fmt(f[1], 2)} ({f[5]}, {f[6]} on {f[7]})"
             for what, f in worst.items() if f is not None]
    tolerances = ", ".join(sorted({f"{f[3]} {tolerance_text(f[2])}" for f in found}))
    if not over:
        return [Para(strong("The frameworks agree"), " with the NumPy backend: the largest "
                     "deviations are " + "; ".join(parts) + f", all within the tolerance "
                     f"({tolerances}) of the training-parity tests.")]
    return [Para(strong("The frameworks do not agree"), f": {len(over)} deviation(s) exceed "
                 f"the tolerance ({tolerances}): " + "; ".join(
                     f"{f[5]}'s {f[4]} on {f[6]} / {f[7]} {fmt(f[1], 2)} ({fmt(f[0], 2)}× the "
                     "tolerance)" for f in over) + ".")]


def fastest(frame: pd.DataFrame, what: str) -> list:
    """Per model: the framework with the lowest step median, every framework as × NumPy's."""
    data = frame[frame["step_median"].map(number).notna()]
    if data.empty:
        return []
    items = []
    unreliable = False
    for (model, dataset), g in data.groupby(["model", "dataset"], sort=False, dropna=False):
        g = g.sort_values("step_median")
        best = g.iloc[0]
        numpy = g.loc[g["framework"] == "numpy", "step_median"]
        base = float(numpy.iloc[0]) if len(numpy) else None
        marks = ((PARALLEL_MARK if g["parallel"].any() else "")
                 + (LOADED_MARK if g["loaded"].any() else ""))
        unreliable |= bool(g["loaded"].any())
        where = f"{model}" + (f" on {dataset}" if dataset else "")
        if base:
            ratios = ", ".join(f"{r.framework} ×{float(r.step_median) / base:.2f}"
                               for r in g.itertuples(index=False))
            items.append([strong(where), f": {best['framework']} is fastest, "
                          f"{fmt(best['step_median'])} ms per step{marks}; step time × NumPy's: "
                          f"{ratios}."])
        else:
            items.append([strong(where), f": {best['framework']} is fastest, "
                          f"{fmt(best['step_median'])} ms per step{marks} (NumPy not timed)."])
    intro = f"Speed ({what}, median step time; below ×1.00: faster than NumPy)"
    if unreliable:
        intro += f", {LOADED_MARK} unreliable: the machine was loaded"
    return [Para(intro + ":"), Bullets(items)]


def accuracies(s: pd.DataFrame) -> list:
    data = s[s["accuracy"] != "—"]
    if data.empty:
        return []
    items = []
    for (model, dataset), g in data.groupby(["model", "dataset"], sort=False, dropna=False):
        items.append([strong(f"{model} on {dataset}"), ": " + ", ".join(
            f"{r.framework} {r.accuracy} %" for r in g.itertuples(index=False)) + "."])
    return [Para("Test accuracy after the last epoch (mean ± standard deviation over the seeds "
                 "that finished; no ± for one seed):"), Bullets(items)]


def verdict_section(results: dict, s: pd.DataFrame, bench: pd.DataFrame | None,
                    run_id: str) -> Section:
    section = Section("Verdict", nav=False)
    training = not s.empty
    if training:
        section.add(*agreement(s))
    if bench is not None and not bench.empty:
        section.add(*fastest(bench, "training step benchmark"))
    if training:
        section.add(*fastest(s, "training"))
        section.add(*accuracies(s))
    statuses = [c.get("status") for c in cells(results)]
    failed, skipped = statuses.count("failed"), statuses.count("skipped")
    if failed or skipped:
        section.add(Para(f"{failed} cell(s) failed and {skipped} were skipped: see ",
                         link("Failed and skipped cells", "#failed-and-skipped-cells"), "."))
    created = results.get("created")
    created = created if isinstance(created, str) and created else "at an unknown time"
    return section.add(Para("Run ", code(run_id), f", created {created}; rendered from ",
                            code("results.json"), " alone. Code side by side: ",
                            link("code/index.html", "code/index.html"), "."))
