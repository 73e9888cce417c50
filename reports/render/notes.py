"""The report's closing sections: framework bugs found, definitions, environment; and the
OpenBLAS warning."""

from __future__ import annotations

import importlib.resources
import json
from typing import Any
from urllib.parse import urlsplit

from .data import LOADED_MARK, NO_DATA, PARALLEL_MARK
from .doc import Banner, Bullets, Para, Section, Table, code, em, link, strong


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as (dotted key, text) pairs."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        # e.g. threadpoolctl's pools: one line, in an order that does not depend on theirs
        items = sorted(", ".join(f"{k} {v}" for k, v in item.items() if v is not None)
                       for item in value)
        return [(prefix, "; ".join(items))]
    if value is None:
        return [(prefix, "—")]
    return [(prefix, value if isinstance(value, str) else json.dumps(value))]


def key_value_table(data: Any, key: str = "setting") -> Table:
    return Table((key, "value"), flatten(data))


def environment_section(environment: Any) -> Section:
    """The runner's environment and every cell's, collapsed: one line of what they all share,
    then a table of only what differs between them."""
    section = Section("Environment")
    if not environment:
        return section.add(Para(NO_DATA + " (no environment.json)"))
    if not isinstance(environment, dict):
        return section.add(key_value_table(environment, "what"))
    per_cell = environment.get("cells")
    runner = {k: v for k, v in environment.items() if k != "cells"}
    cell_envs = {str(c): e for c, e in per_cell.items() if isinstance(e, dict)} \
        if isinstance(per_cell, dict) else {}
    if not cell_envs:
        return section.add(key_value_table(runner, "what"))
    envs = {"(the runner)": dict(flatten(runner)),
            **{cid: dict(flatten(env)) for cid, env in cell_envs.items()}}
    keys = list(dict.fromkeys(k for env in envs.values() for k in env))
    # A key differs when two processes recorded different values; one that only some
    # processes recorded (the runner's dataset checksums, a framework's threads) does not.
    differ = [k for k in keys if len({env[k] for env in envs.values() if k in env}) > 1]
    common = [(k, next(e[k] for e in envs.values() if k in e)) for k in keys if k not in differ]
    section.add(Para(strong(f"The same in the runner and all {len(cell_envs)} cells"), ": ",
                     "; ".join(f"{k} {v}" for k, v in common) + "." if common else "nothing."))
    if differ:
        section.add(Para("What differs between them (— where a process did not record it):"),
                    Table(("process", *differ),
                          [(name, *(env.get(k, "—") for k in differ))
                           for name, env in envs.items()]))
    return section


def openblas_warning(environment: Any) -> list:
    """A warning when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE was set for the run or a cell."""
    envs = [environment] if isinstance(environment, dict) else []
    cells = environment.get("cells") if isinstance(environment, dict) else None
    envs += [env for env in (cells.values() if isinstance(cells, dict) else [])
             if isinstance(env, dict)]
    found: dict[str, str] = {}
    for env in envs:
        variables = env.get("openblas_variables")
        if isinstance(variables, dict):
            found.update({str(k): str(v) for k, v in variables.items()})
    if not found:
        return []
    settings: list = []
    for i, (k, v) in enumerate(sorted(found.items())):
        settings += [", "] * bool(i) + [code(f"{k}={v}")]
    return [Banner(strong("Warning"), ": ", *settings, " was set for this run. It makes "
                   "OpenBLAS use the kernel of that core type instead of the one it would pick "
                   "for this CPU, which can be much slower (the kernel each cell ran is under ",
                   code("architecture"), " in its BLAS pools): NumPy timings may understate "
                   "the machine. For a benchmark, unset both variables in that command alone.")]


# ---------------------------------------------------------------------------------------------
# framework bugs (reference/upstream_defects.json, written by the property tests' audit)

DEFECTS = "upstream_defects.json"


def read_defects() -> list[dict] | None:
    """reference/upstream_defects.json as a list of records, or None when there is none."""
    try:
        text = importlib.resources.files("reference").joinpath(DEFECTS).read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError, UnicodeDecodeError):
        return None
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        return None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else None


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return json.dumps(value)


def _upstream(url: Any) -> Any:
    if isinstance(url, str) and urlsplit(url.strip()).scheme in ("http", "https"):
        return [link(url, url)]
    return _text(url)


def defects_section(defects: list[dict] | None) -> Section | None:
    if defects is None:
        return None
    section = Section("Framework bugs this suite found")
    if not defects:
        return section.add(Para("None recorded in ", code("reference/" + DEFECTS), "."))
    section.add(Para(f"{len(defects)} wrong result(s) found in the frameworks by the parity and "
                     "property tests (", code("reference/" + DEFECTS), "), each with the "
                     "backend's workaround and a live test that says whether it is still "
                     "there:"))
    return section.add(Table(
        ("framework", "op", "geometry", "reproducer", "expected", "got", "workaround",
         "upstream", "test"),
        [(f"{_text(d.get('framework'))} {_text(d.get('versions'))}", _text(d.get("op")),
          _text(d.get("geometry")), [code(_text(d.get("reproducer")))], _text(d.get("expected")),
          _text(d.get("got")), _text(d.get("workaround")), _upstream(d.get("upstream")),
          [code(_text(d.get("test")))]) for d in defects]))


# ---------------------------------------------------------------------------------------------
# definitions

_TRAIN_DEFINITIONS = (
    [strong("test accuracy (%)"), ": the fraction of test images classified correctly after "
     "the last epoch, ×100; mean ± sample standard deviation (ddof 1) over the seeds whose "
     "cell finished (one seed: no ±). ", em("seeds"), " counts the cells: finished / all."],
    [strong("s / epoch"), ": wall-clock seconds of one training epoch, the median over every "
     "epoch of every seed (the first epoch, with its warm-up, included)."],
    [strong("step median / p90 (ms)"), ": milliseconds per training step (forward, backward, "
     "update) after warm-up, the median and 90th percentile within a cell; the table shows "
     "the median of the cells' values over seeds."],
    [strong("images / s"), ": training throughput, computed here from the table's own step "
     "median: batch size × 1000 / step median (ms). The two columns therefore always agree; "
     "it leaves out the time between steps (data loading, evaluation) that s / epoch counts."],
    [strong("peak RSS (MiB)"), ": the cell process's peak resident memory, MiB (2^20 bytes); "
     "the largest over seeds. Each cell runs in its own process, so this includes the "
     "framework's own footprint."],
    [strong("loss / weights dev. vs NumPy"), ": the largest normalised deviation "
     "max|a − b| / max|b| of this framework's loss curve / final weights from the NumPy "
     "backend's in the same run (same seed, same initial weights, same batches); the largest "
     "over seeds. NumPy is the baseline of this comparison."],
)
_STEP_DEFINITIONS = (
    [strong("step median / p90 (ms)"), " (benchmarks): milliseconds per training step "
     "(forward, backward, SGD update) on one synthetic batch, over the timed steps after the "
     "warm-up steps; ", strong("× PyTorch"), ": this median over PyTorch's for the same model "
     "in the same run (below 1: faster than PyTorch)."],
    [strong("images / s"), " (benchmarks): the batch size over the median step time."],
    [strong("inference (ms)"), ": the median time of ", code("model.predict"), " on the same "
     "batch."],
    [strong("GFLOP / step"), ", ", strong("GFLOP/s"), ": the multiply-adds of the model's "
     "convolutions and linear layers in one step, counted from the model spec "
     "(reports/flops.py: forward, weight gradient, input gradient except the first layer's; "
     "element-wise ops not counted), and that count over the median step time. ",
     strong("% of GEMM"), ": GFLOP/s over the highest float32 GEMM rate (2n³ FLOPs of an "
     "n × n matmul, each framework's own) measured in the run: how close the step comes to the "
     "machine's limit."],
    [strong("step memory (MiB)"), ": the growth of the cell process's peak resident memory "
     "during the timed steps over its resident memory just before them (the C heap trimmed "
     "first); ", strong("memory from start"), ": the same peak over the resident memory before "
     "the first warm-up step, so that memory kept from step to step (framework pools, caches) "
     "counts."],
)


def definitions_section(train: bool = True, steps: bool = False) -> Section:
    """The definitions of the numbers the report shows: training, benchmark and op ones."""
    return Section("What each number means").add(Bullets((
        *(_TRAIN_DEFINITIONS if train else ()),
        *(_STEP_DEFINITIONS if steps else ()),
        [strong("op times"), ": the median (and p90) of repeated calls after warm-up, in ms, per "
         "op, input size and direction; plots and tables add forward and backward."],
        [strong(PARALLEL_MARK), ": a timing measured while other cells ran beside it (",
         code("parallel"), " in the rows): it competed for the machine's cores, so read it as "
         "an upper bound and compare it only with timings measured the same way."],
        [strong(LOADED_MARK), ": a timing of a cell during which the load of the other "
         "processes (the machine's 1-minute load average less the run's own threads, at the "
         "cell's start or sampled while it ran) was at or above the number of threads the run "
         "used (", code("loaded"), " in the cell's record): other work "
         "competed for the cores, so the timing is unreliable and ratios built on it too."],
    )))
