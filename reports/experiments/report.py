"""An experiment's report (report.md and the self-contained report.html) through the renderer's
document model (reports/render/doc.py): settings, the experiment's figures, how far apart the
frameworks are, each framework's run and the machine."""

from __future__ import annotations

import base64
from typing import Any

from ..render.doc import Bullets, Para, Section, Table, code, strong, to_html, to_markdown
from .common import Experiment

SKIP = {"value", "base", "scale", "deviation", "framework", "at"}


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "—" if value is None else str(value)


def statement(results: dict[str, Any]) -> list:
    """One sentence: the largest deviation, where, and what it is relative to."""
    top = results["largest_deviation"]
    if top is None:
        return ["Only one framework ran (or none against the base): nothing to compare."]
    if top["deviation"] == 0:
        return ["Every curve is the same in every framework, to the last bit (deviation 0 "
                "from ", code(top["base"]), " at every step)."]
    where = ", ".join(f"{k} {v}" for k, v in top.items() if k not in SKIP)
    return ["The largest deviation from ", code(top["base"]), " over every curve is ",
            strong(f"{top['deviation']:.3g}"), f" ({top['framework']}, {top['value']}"
            f"{', ' + where if where else ''}, at {top['at']}), relative to the largest "
            f"|{top['value']}| of the {top['base']} curve."]


def deviation_table(results: dict[str, Any]) -> Table | None:
    rows = results["deviations"]
    if not rows:
        return None
    keys = [k for k in rows[0] if k not in SKIP]
    return Table([*keys, "value", "largest relative deviation", "framework", "at"],
                 [[fmt(r[k]) for k in keys] + [r["value"], fmt(r["deviation"]),
                                               fmt(r["framework"]), fmt(r["at"])]
                  for r in rows])


def runs_table(results: dict[str, Any]) -> Table:
    rows = []
    for framework, run in results["runs"].items():
        env = run.get("environment", {})
        version = env.get(framework) or env.get("numpy") or "—"
        rows.append([framework, run["status"], version, fmt(run.get("wall_seconds")),
                     fmt(run.get("seconds")), run.get("error") or ""])
    return Table(["framework", "status", "version", "wall s (with start-up)", "experiment s",
                  "error"], rows)


def render(experiment: Experiment, results: dict[str, Any], blocks: list,
           figures: dict[str, bytes]) -> tuple[str, str]:
    config, env = results["config"], results["environment"]
    about = Section("What this re-runs").add(
        Para(experiment.summary, " — ", experiment.source, f"; {config['size']} sizes (",
             code("--full"), " for the tutorial's)."),
        Table(["setting", "value"], [[k, fmt(v)] for k, v in config.items()]))
    results_section = Section("Results").add(*blocks)
    apart = Section("How far apart the frameworks are").add(
        Para(*statement(results)), deviation_table(results),
        Para("Every framework starts from the same weights (drawn once in NumPy from the "
             "seed), walks the same batches in the same order and drops the same units; a "
             "deviation is |framework − base| at a step over the base curve's largest "
             "magnitude."))
    runs = Section("Runs").add(
        runs_table(results),
        Para("Each framework ran in its own process, one after the other; the wall time "
             "includes the process's start-up and imports."))
    machine = Section("Machine").add(Bullets([
        ["CPU: ", env.get("cpu", "?"), f" ({env.get('cpu_count')} logical CPUs)"],
        ["Python ", env.get("python", "?"), ", ", env.get("platform", "?")],
        ["command: ", code(results.get("command", ""))]]))
    sections = [about, results_section, apart, runs, machine]
    title = f"{experiment.title} ({experiment.name})"
    images = {name: base64.b64encode(data).decode("ascii") for name, data in figures.items()}
    return to_markdown(sections, title), to_html(sections, title, images)
