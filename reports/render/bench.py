"""Sections on speed: the step benchmarks (``python -m reports bench``) and the op benchmarks."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .. import benchcheck, codepages, plots
from ..opbench import ISSUE_CONV, size_label
from .data import NO_DATA, fmt, marked
from .doc import Figure, Para, Section, Subheading, Table, code, em, strong
from .training import marks_note


def _op_rank(op: object) -> int:
    order = {name: i for i, name in enumerate(codepages.OPS)}
    return order.get(op, len(order))


def _ratio(value: object) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{v:.2f}" if math.isfinite(v) else "—"


def op_rates(rows: pd.DataFrame) -> Table | None:
    """GFLOP/s of conv2d and linear per size and direction, a column per framework."""
    data = rows[(rows["kind"] == "op") & (rows["metric"] == "gflops") & rows["value"].notna()]
    if data.empty:
        return None
    frameworks = plots.ordered(data["framework"])
    keys = list(dict.fromkeys(zip(data["op"], data["size"], data["direction"])))
    keys.sort(key=lambda k: (_op_rank(k[0]), plots.size_value(k[1]), str(k[1]),
                             k[2] != "forward"))
    table = []
    for op, size, direction in keys:
        at = data[(data["op"] == op) & (data["size"] == size) & (data["direction"] == direction)]
        table.append((op, size, direction, *(
            fmt(at.loc[at["framework"] == fw, "value"].median()) if (at["framework"] == fw).any()
            else "—" for fw in frameworks)))
    return Table(("op", "size", "direction", *frameworks), table)


def scaling_caption(times: pd.DataFrame) -> str:
    """What the op-scaling plot draws, from what it was given (plots.op_scaling)."""
    ref = times[times["framework"] == "reference"]
    lines = ref.groupby("op")["size_value"].nunique() if not ref.empty else pd.Series(dtype=int)
    if ref.empty:
        reference = ""
    elif (lines > 1).any():
        reference = " (the loop reference dashed, grey diamonds)"
    else:
        reference = (" (the loop reference, timed at the smallest size only, is a single grey "
                     "diamond per op)")
    return ("Forward + backward time (sum of the medians, ms) against the problem size, "
            f"log-log: one panel per op, one line per framework{reference}. The problem size "
            "is the size label's numbers multiplied together, the kernel side squared (for a "
            "convolution: its multiply-adds at stride 1); sizes of equal product share an x "
            "and the line goes through their mean.")


def ops_section(times: pd.DataFrame, speedup: pd.DataFrame, images: dict[str, bytes],
                rates: Table | None = None) -> Section:
    section = Section("Op benchmarks")
    if times.empty:
        return section.add(Para(NO_DATA + " The run has no op rows."))
    if "op_scaling" in images:
        section.add(Figure("op_scaling", "op time against size", scaling_caption(times)))
    largest = times.sort_values("size_value").groupby("op", sort=False).tail(1)[["op", "size"]]
    at_largest = times.merge(largest, on=["op", "size"])
    frameworks = plots.ordered(at_largest["framework"])  # the reference runs small sizes only
    table = []
    for op, size in zip(largest["op"], largest["size"]):
        at = times[(times["op"] == op) & (times["size"] == size)]
        cells = []
        for fw in frameworks:
            hit = at[at["framework"] == fw]
            cells.append(marked(hit["ms"].iloc[0], bool(hit["parallel"].iloc[0]),
                                bool(hit["loaded"].iloc[0])) if len(hit) else "—")
        table.append((op, size, *cells))
    table.sort(key=lambda r: (_op_rank(r[0]), r[0]))
    section.add(Para("Forward + backward (ms, sum of the medians) at each op's largest size "
                     "(largest by the product of the size label's numbers, kernel squared):"),
                Table(("op", "size", *frameworks), table))
    section.add(*marks_note(False, bool(at_largest["loaded"].any())))
    if rates is not None:
        section.add(Para("FLOP rate (GFLOP/s) of conv2d and linear: the multiply-adds "
                         "(reports/flops.py; backward = dx and dW, twice the forward) over the "
                         "median time:"), rates)
    section.add(Subheading("The loop reference against the NumPy backend"))
    if speedup.empty:
        return section.add(Para(NO_DATA + " (needs reference and numpy op rows at the same "
                                "size)"))
    section.add(Figure("reference_speedup", "reference vs NumPy speed-up",
                       "How many times faster the vectorised NumPy backend is than the loop "
                       "reference, per op, at every size both ran."))
    section.add(Table(("op", "size", "reference (ms)", "numpy (ms)", "speed-up"), [
        (op, size, fmt(r), fmt(n), f"×{fmt(x)}")
        for op, size, r, n, x in speedup.itertuples(index=False)]))
    issue = speedup[(speedup["op"] == "conv2d") & (speedup["size"] == size_label(ISSUE_CONV))]
    if not issue.empty:
        r = issue.iloc[0]
        section.add(Para(
            "At the size of issue 5 (conv2d ", code(r["size"]), ": N=64, C=3, 32×32, F=32, "
            f"k=5) the NumPy backend takes {fmt(r['numpy_ms'])} ms forward + backward and the "
            f"loop reference {fmt(r['reference_ms'] / 1e3)} s (timed once each way, without "
            "warm-up): ", strong(f"×{fmt(r['speedup'])}"), "."))
    return section


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
    per_cell = environment.get("cells") if isinstance(environment, dict) else None
    if not isinstance(per_cell, dict) or not per_cell:
        return None
    rows = []
    for cid, env in per_cell.items():
        if not isinstance(env, dict):
            rows.append((str(cid), "—", "—", "—", "—"))
            continue
        settings = env.get("thread_settings")
        settings = settings if isinstance(settings, dict) else {}
        rows.append((str(cid), str(settings.get("threads", "—")), _pools(env.get("blas")),
                     _pair_or_dash(env, "torch_threads", "torch_interop_threads"),
                     _pair_or_dash(env, "tf_intra_op_threads", "tf_inter_op_threads")))
    return Table(("cell", "threads", "BLAS / OpenMP pools (threadpoolctl)",
                  "torch intra / inter-op", "TF intra / inter-op"), rows)


def _bench_table(b: pd.DataFrame) -> Table:
    rows = [
        (r.model, r.framework, fmt(r.gflop), marked(r.step_median, r.parallel, r.loaded),
         marked(r.step_p90, r.parallel, r.loaded), _ratio(r.vs_torch),
         marked(r.throughput, r.parallel, r.loaded), marked(r.inference, r.parallel, r.loaded),
         fmt(r.gflops), fmt(r.gemm_share * 100, 2) if math.isfinite(r.gemm_share) else "—",
         fmt(r.memory), _ratio(r.memory_vs_torch), fmt(r.memory_from_start))
        for r in b.itertuples(index=False)]
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
    return Table(("framework", "GEMM GFLOP/s (median)", "min", "max", "cells"), rows)


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
                  *(f"{names.get(fw, fw)} / PyTorch" for fw in others)), rows)


def _targets() -> tuple[dict[str, Any] | None, str | None]:
    try:
        return benchcheck.load_targets(), None
    except benchcheck.TargetsError as err:
        return None, str(err)


def ratio_table(results: dict[str, Any], targets: dict[str, Any]) -> Table | None:
    """Per thread count, model and metric: NumPy's and PyTorch's medians over the rounds, the
    ratio, its spread over the rounds and the target's verdict (reports/benchcheck.py)."""
    verdicts = benchcheck.evaluate([results], targets, all_threads=False)
    if not verdicts:
        return None
    rows = []
    for v in verdicts:
        spread = v.get("spread")
        rows.append((v["model"], v["metric"], str(v["threads"]), fmt(v.get("subject")),
                     fmt(v.get("reference")), _ratio(v.get("ratio")),
                     "—" if not spread else f"{spread[0]:.2f} ({spread[1]:.2f}–{spread[2]:.2f})",
                     str(v.get("rounds", 0)), f"≤ {v['target']:.2f}",
                     v["status"] + (f": {v['reason']}" if v.get("reason") else "")))
    s, r = targets["subject"], targets["reference"]
    return Table(("model", "metric", "threads", f"{s}", f"{r}", f"{s} / {r}",
                  "per round: median (min–max)", "rounds", "target", "verdict"), rows)


def cell_load_table(results: dict[str, Any], threshold: float) -> Table | None:
    """Every step cell's round, position in it, and the load while it measured."""
    cells = benchcheck.step_cells(results)
    if not cells:
        return None
    rows = []
    for c in cells:
        share = (c["other_cpu"] / c["window"] if c["other_cpu"] is not None and c["window"]
                 else None)
        why = benchcheck.cell_load(c, threshold) if c["status"] == "ok" else c["status"]
        rows.append((str(c["cell_id"]), str(c["round"] or "—"), str(c["position"] or "—"),
                     fmt(c["window"]), fmt(c["other_cpu"]), fmt(share, 2),
                     fmt(c["load_average"]), "no" if why is None else f"yes: {why}"))
    return Table(("cell", "round", "position", "measuring (s)", "other CPU (s)",
                  "other CPU (cores)", "load average", "loaded"), rows)


def rounds_part(results: dict[str, Any] | None) -> list:
    """The subsection on the interleaved rounds, the ratios' spread and the load per cell."""
    if results is None:
        return []
    targets, error = _targets()
    out: list = [Subheading("Ratios over the rounds, and the targets")]
    if targets is None:
        return [*out, Para(f"The targets file could not be read: {error}")]
    rounds = (results.get("config") or {}).get("rounds")
    out.append(Para(
        f"The step cells ran in {rounds or 1} round{'' if rounds == 1 else 's'}, one cell per "
        "framework in each, the frameworks' order rotated from round to round. Each "
        "framework's figure is its median over every timed step (predict call) of every "
        "round; memory, the median over the rounds. The spread is the per-round ratios. The "
        "targets are reports/bench_targets.json's (", code("python -m reports bench --check"),
        " judges them at every thread count); a cell is loaded when other processes used "
        f"more than {targets['loaded_other_cpu']:g} cores' worth of CPU time while it "
        "measured, or their load average reached its threads, and a target whose cells were "
        "loaded is unverified, never met."))
    table = ratio_table(results, targets)
    out.append(table if table is not None else Para(NO_DATA + " (no step cells)"))
    loads = cell_load_table(results, float(targets["loaded_other_cpu"]))
    if loads is not None:
        out += [Para("Each step cell's round and position in it, how long it measured (warm-up, "
                     "timed steps and predict calls), the CPU time other processes used in "
                     "that window (the machine's busy time from /proc/stat minus the cell's "
                     "own), the 1-minute load average at its end, and whether it counts as "
                     "loaded:"), loads]
    return out


def bench_section(b: pd.DataFrame, times: pd.DataFrame, environment: Any,
                  images: dict[str, bytes], results: dict[str, Any] | None = None) -> Section:
    section = Section("Benchmarks")
    if b.empty:
        return section.add(Para(NO_DATA + " (no step-benchmark rows)"))
    best = b.loc[b["gemm"].idxmax()] if b["gemm"].notna().any() else None
    gemm = (f"{fmt(best['gemm'])} GFLOP/s, {best['framework']}'s" if best is not None
            else "not measured")
    section.add(Para("One training step (forward, backward, SGD update) of each model at its "
                     "tutorial's input size, on one synthetic batch; every framework starts "
                     "from the same weights and sees the same batch, each in its own process "
                     "with the same thread count. With several rounds, each figure here is the "
                     "median over the rounds of the cells' own; the ratios over every timed "
                     "step, with their spread, follow below. Ratios are to PyTorch's cells of "
                     "the same model in this run (below 1: faster than PyTorch); % of GEMM is the "
                     "step's GFLOP/s over the best float32 GEMM rate measured in the run "
                     f"({gemm})."), _bench_table(b))
    section.add(*marks_note(bool(b["parallel"].any()), bool(b["loaded"].any())))
    if "bench_steps" in images:
        section.add(Figure("bench_steps", "training-step latency per model",
                           "Median training-step latency (ms) per model and framework; the "
                           "error bar reaches the 90th percentile."))
    section.add(Para(
        "Step memory is what the step allocates beyond what the process holds between steps. "
        "A framework that keeps its step's buffers in its own pool from one step to the next "
        "(TensorFlow's CPU allocator does) shows little of it there; ", em("memory from start"),
        " counts such pools (and one-time costs such as TensorFlow's tracing) too."))
    section.add(*rounds_part(results))
    gemm_table = _gemm_table(b)
    if gemm_table is not None:
        section.add(Subheading("GEMM rate per framework"),
                    Para("Each framework's own float32 matmul of two square matrices (one per "
                         "step cell, the median of its repeats): the rate its BLAS reaches "
                         "here, and the limit the steps are measured against."), gemm_table)
    ratios = op_ratio_table(times)
    section.add(Subheading("Ops against PyTorch"))
    if ratios is None:
        section.add(Para(NO_DATA + " (no op rows)"))
    else:
        section.add(Para("Forward + backward (ms, sum of the medians) per op and size, and "
                         "each framework's time over PyTorch's (below 1: faster than "
                         "PyTorch):"), ratios)
    threads = thread_table(environment)
    section.add(Subheading("Thread settings of every cell"))
    if threads is None:
        return section.add(Para(NO_DATA + " (no per-cell environment in environment.json)"))
    return section.add(Para("As each cell's process recorded them after setting its threads: "
                            "the count the runner gave it, the BLAS and OpenMP pools "
                            "(threadpoolctl: library, version, the kernel architecture it "
                            "picked, threads), and PyTorch's and TensorFlow's intra-op / "
                            "inter-op pools."), threads)
