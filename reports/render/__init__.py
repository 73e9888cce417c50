"""The comparison report, rebuilt from a run directory's saved results alone.

``render(run_dir)`` reads ``results.json``, ``environment.json``, (if present)
``baseline.json`` (docs/results.md) and the first conv's filters from ``weights/*.npz``
(reports/filters.py), and writes ``report.md`` with its ``plots/*.png``,
a self-contained ``report.html`` (plots inlined as base64 PNG, CSS inline, no scripts, nothing
fetched) and the side-by-side code pages ``code/*.html``. It never runs or imports a backend.

The report is a list of sections, each built from the data by a function (front.py: the load
banner and the verdict; training.py, bench.py, notes.py: the details) into a small document
(doc.py: paragraphs, lists, tables, figures) that two Jinja2 templates write as HTML (autoescape
on) and as Markdown (every value escaped), so both say the same thing and no data becomes
markup. Everything is built in memory first and written afterwards, each file atomically: a
failure leaves the previous report whole.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from .. import codepages, filters, plots
from ..io import write_bytes_atomic, write_text_atomic
from .bench import bench_section, op_rates, op_ratio_table, ops_section, thread_table
from .data import (
    FIELDS,
    KEYS,
    LOADED_MARK,
    NO_DATA,
    PARALLEL_MARK,
    STEP_METRICS,
    bench_summary,
    fmt,
    has_steps,
    has_training,
    read_json,
    rows_frame,
    summary,
    usable_rows,
)
from .doc import Section, to_html, to_markdown
from .front import PARITY_TOLERANCE, load_banner, verdict_section
from .notes import (
    defects_section,
    definitions_section,
    environment_section,
    openblas_warning,
    read_defects,
)
from .recipe import recipe_banner, recipe_section
from .training import (
    baseline_section,
    coincide_note,
    curves_section,
    measured_section,
    parity_section,
    problems_section,
    speed_section,
    summary_section,
)

__all__ = ["FIELDS", "KEYS", "LOADED_MARK", "NO_DATA", "PARALLEL_MARK", "PARITY_TOLERANCE",
           "STEP_METRICS", "bench_summary", "build", "fmt", "has_steps", "has_training",
           "op_rates", "op_ratio_table", "plots", "render", "rows_frame", "summary",
           "thread_table", "usable_rows"]


def build(run_dir: str | os.PathLike) -> tuple[str, list, list[Section], dict[str, bytes]]:
    """The report's title, its top blocks (banners), its sections and its plots (PNG bytes by
    name), from the saved files."""
    run_dir = Path(run_dir)
    results = read_json(run_dir / "results.json", required=True)
    if not isinstance(results, dict):
        raise ValueError(f"{run_dir / 'results.json'}: expected a JSON object")
    environment = read_json(run_dir / "environment.json", required=False)
    baseline = read_json(run_dir / "baseline.json", required=False)

    rows = usable_rows(results)
    s = summary(results, rows)
    times = plots.op_times(rows)
    speedup = plots.reference_speedup(times)
    steps = has_steps(results, rows)
    # a bench run (step cells, no training) leaves out the training sections
    training = has_training(results, rows) or not steps
    bench = bench_summary(results, rows) if steps else None
    dtypes = {str(d) for d in s["dtype"].dropna()}
    tolerance = PARITY_TOLERANCE["float64" if dtypes == {"float64"} else "float32"]
    drawn = {"loss_curves": plots.curves(rows, "loss"),
             "accuracy_curves": plots.curves(rows, "accuracy"),
             "speed": plots.speed_bars(s),
             "bench_steps": None if bench is None else plots.speed_bars(bench),
             "op_scaling": plots.op_scaling(times),
             "reference_speedup": plots.speedup_bars(speedup),
             "parity": plots.parity(rows, tolerance)}
    images = {name: png for name, png in drawn.items() if png is not None}
    filter_sets = filters.filter_sets(run_dir, results, environment) if training else []
    images.update(filters.images(filter_sets))

    parity = plots.parity_info(rows)
    parity["tolerance"] = tolerance
    if parity["coincide"]:
        parity["coincide"] = (" and ".join(parity["coincide"]) + " deviate from NumPy by the "
                              "same amount at every step: their lines coincide.")
    coincide = {f"{q}_curves": coincide_note(rows, q) for q in ("loss", "accuracy")}

    run_id = str(results.get("run_id") or run_dir.name)
    title = f"cnn-rosetta {'comparison' if training else 'benchmark'}: run {run_id}"
    top = [*load_banner(results), *openblas_warning(environment), *recipe_banner(results)]
    sections = [
        verdict_section(results, s if training else s.iloc[0:0], bench, run_id),
        recipe_section(results, s),  # None unless the run is a recipe's (render/recipe.py)
        measured_section(results),
        *([bench_section(bench, times, environment, images, results)] if steps else []),
        *([summary_section(s)] if training else []),
        problems_section(results),
        *([curves_section(images, coincide), speed_section(images)] if training else []),
        ops_section(times, speedup, images, op_rates(rows)),
        *([parity_section(images, parity), baseline_section(s, baseline)] if training else []),
        filters.filters_section(filter_sets, images),
        defects_section(read_defects()),
        definitions_section(train=training, steps=steps),
        environment_section(environment),
    ]
    return title, top, [x for x in sections if x is not None], images


def render(run_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.md, plots/*.png, report.html and code/*.html into ``run_dir``.

    Returns ``{path relative to run_dir: absolute path}`` of every file written. Reads only
    results.json, environment.json, baseline.json and weights/*.npz (and the project's source
    files for the code pages); runs and imports no backend.
    """
    run_dir = Path(run_dir).resolve()
    title, top, sections, images = build(run_dir)
    markdown = to_markdown(sections, title, top)
    inlined = {name: base64.b64encode(png).decode("ascii") for name, png in images.items()}
    page = to_html(sections, title, inlined, top)
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
