"""What the report opens with: the load banner and the verdict, in sentences computed from the
results (issue 10, points 13 and 14)."""

from __future__ import annotations

import pandas as pd

from .data import LOADED_MARK, PARALLEL_MARK, cells, fmt, loaded_cells, number, rows_frame, run_load
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


# The training-parity tests compare runs of this many steps (parity_tests/
# test_training_parity.py STEPS; a test keeps the two equal). Beyond them float32 rounding
# differences grow as training amplifies them (a ReLU that rounding flips in one framework
# only, adaptive steps divided by small roots): a long run's final weights are reported, not
# judged against a 20-step tolerance.
PARITY_STEPS = 20


def _early_loss_devs(results: dict) -> dict[tuple, tuple[float, int]]:
    """(framework, model, dataset) -> (the largest parity_loss_dev over each run's first
    PARITY_STEPS steps, the most steps any of its runs had), over its seeds."""
    rows = rows_frame(results)
    rows = rows[(rows["metric"] == "parity_loss_dev") & rows["value"].notna()]
    out: dict[tuple, tuple[float, int]] = {}
    for (fw, model, dataset, _), g in rows.groupby(["framework", "model", "dataset", "seed"],
                                                   sort=False, dropna=False):
        g = g.sort_values(["epoch", "step"], na_position="first")
        dev, steps = float(g["value"].head(PARITY_STEPS).max()), len(g)
        old = out.get((fw, model, dataset), (0.0, 0))
        out[(fw, model, dataset)] = (max(dev, old[0]), max(steps, old[1]))
    return out


def agreement(s: pd.DataFrame, results: dict | None = None) -> list:
    """Whether the frameworks agree with the NumPy backend as the training-parity tests judge
    it: the loss over the first PARITY_STEPS steps (and the final weights of runs no longer
    than that) against the tests' tolerance; the whole run's deviations as information."""
    early = _early_loss_devs(results or {})
    found, longer = [], []
    for row in s.itertuples(index=False):
        if row.framework == "numpy":
            continue
        dtype, tol = _tolerance(row.dtype)
        dev, steps = early.get((row.framework, row.model, row.dataset), (None, 0))
        judged = [("final weights", number(row.weights_dev))]
        if dev is not None:
            judged = [(f"loss over the first {min(steps, PARITY_STEPS)} steps", dev)]
            if steps > PARITY_STEPS:
                longer.append((number(row.loss_dev), number(row.weights_dev), steps))
            else:
                judged.append(("final weights", number(row.weights_dev)))
        else:
            judged.append(("loss curve", number(row.loss_dev)))
        for what, v in judged:
            if v is not None:
                found.append((v / tol, v, tol, dtype, what, row.framework, row.model,
                              row.dataset))
    if not found:
        return [Para(strong("Agreement not measured"), ": parity needs the NumPy backend and "
                     "another framework trained on the same model, dataset and seed.")]
    over = sorted((f for f in found if f[0] > 1), reverse=True)
    worst: dict[str, tuple] = {}
    for f in found:
        kind = f[4].split(" over ")[0]
        if kind not in worst or f > worst[kind]:
            worst[kind] = f
    parts = [f"{f[4]} {fmt(f[1], 2)} ({f[5]}, {f[6]} on {f[7]})" for f in worst.values()]
    tolerances = ", ".join(sorted({f"{f[3]} {tolerance_text(f[2])}" for f in found}))
    if over:
        out = [Para(strong("The frameworks do not agree"), f": {len(over)} deviation(s) exceed "
                    f"the tolerance ({tolerances}): " + "; ".join(
                        f"{f[5]}'s {f[4]} on {f[6]} / {f[7]} {fmt(f[1], 2)} ({fmt(f[0], 2)}× "
                        "the tolerance)" for f in over) + ".")]
    else:
        out = [Para(strong("The frameworks agree"), " with the NumPy backend: the largest "
                    "deviations are " + "; ".join(parts) + f", all within the tolerance "
                    f"({tolerances}) of the training-parity tests.")]
    if longer:
        loss = max((x for x, _, _ in longer if x is not None), default=None)
        weights = max((w for _, w, _ in longer if w is not None), default=None)
        out.append(Para(f"Over the whole runs (up to {max(n for _, _, n in longer)} steps) the "
                        f"largest deviations are loss {fmt(loss, 2)} and final weights "
                        f"{fmt(weights, 2)}: past the first {PARITY_STEPS} steps float32 "
                        "rounding differences grow as training amplifies them, so those are "
                        "reported, not judged (the tests compare "
                        f"{PARITY_STEPS}-step runs)."))
    return out


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
        section.add(*agreement(s, results))
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
