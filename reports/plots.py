"""The report's plots, drawn from the tidy rows with matplotlib's Agg canvas, returned as PNG bytes.

Each function takes the rows as a pandas DataFrame (docs/results.md) and returns PNG bytes, or
None when the rows hold nothing to draw. pyplot is never used: a ``Figure`` with its own Agg
canvas has no global state and needs no display.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

FRAMEWORK_ORDER = ("reference", "numpy", "torch", "tensorflow")
COLORS = {"numpy": "#4c72b0", "torch": "#c44e52", "tensorflow": "#dd8452",
          "reference": "#555555"}
_OTHER_COLORS = ("#55a868", "#8172b3", "#937860", "#da8bc3")
# Distinct markers and widths too: frameworks that agree draw on top of each other.
MARKERS = {"reference": "D", "numpy": "o", "torch": "s", "tensorflow": "^"}
WIDTHS = {"reference": 4.0, "numpy": 4.0, "torch": 2.4, "tensorflow": 1.2}


def color(framework: str) -> str:
    if framework in COLORS:
        return COLORS[framework]
    return _OTHER_COLORS[sum(map(ord, str(framework))) % len(_OTHER_COLORS)]


def marker(framework: str) -> str:
    return MARKERS.get(framework, "v")


def width(framework: str) -> float:
    return WIDTHS.get(framework, 1.5)


def ordered(names) -> list:
    """Frameworks in the canonical order, unknown ones after them, alphabetically."""
    names = [n for n in dict.fromkeys(names) if isinstance(n, str)]
    rank = {n: i for i, n in enumerate(FRAMEWORK_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def size_value(label: object) -> float:
    """A number for a size label that grows with the op's work: the product of its dimensions,
    the kernel side ``k`` squared (reports/opbench.py's labels).

    ``N64-C3-H32-W32-F32-k5`` -> 64·3·32·32·32·5² (a convolution's multiply-adds at stride 1),
    ``N256-D784-F100`` -> N·D·F, ``N8-K10`` -> 80, ``4096`` -> 4096; no number -> NaN.
    """
    try:
        return float(label)
    except (TypeError, ValueError):
        pass
    tokens = re.findall(r"([A-Za-z]+)(\d+)", str(label))
    if not tokens:
        return math.nan
    return float(math.prod(int(v) ** (2 if k == "k" else 1) for k, v in tokens))


def group_label(model: object, dataset: object, many_datasets: bool) -> str:
    return f"{model} / {dataset}" if many_datasets else str(model)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No Software/date metadata: the same rows give byte-identical PNGs.
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _panels(n: int, width: float = 4.2, height: float = 3.2, ncols: int = 3):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _train_groups(train: pd.DataFrame) -> list[tuple[object, object]]:
    return list(dict.fromkeys(zip(train["model"], train["dataset"])))


def curves(rows: pd.DataFrame, quantity: str) -> bytes | None:
    """Train (dashed) and test (solid) ``quantity`` per epoch: one panel per model, one colour per
    framework, the mean over seeds with the seeds' range shaded."""
    metrics = {f"train_{quantity}": "--", f"test_{quantity}": "-"}
    data = rows[(rows["kind"] == "train") & rows["metric"].isin(metrics)
                & rows["epoch"].notna() & rows["value"].notna()]
    if data.empty:
        return None
    groups = _train_groups(data)
    many = data["dataset"].nunique() > 1
    fig, axes = _panels(len(groups))
    frameworks = ordered(data["framework"])
    for ax, (model, dataset) in zip(axes, groups):
        panel = data[(data["model"] == model) & (data["dataset"] == dataset)]
        for fw in frameworks:
            for metric, style in metrics.items():
                series = panel[(panel["framework"] == fw) & (panel["metric"] == metric)]
                if series.empty:
                    continue
                stats = series.groupby("epoch")["value"].agg(["mean", "min", "max"])
                ax.plot(stats.index, stats["mean"], style, color=color(fw), marker=marker(fw),
                        linewidth=width(fw), markersize=2 + 2 * width(fw),
                        markerfacecolor="none", alpha=0.85)
                if metric.startswith("test") and (stats["max"] > stats["min"]).any():
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=color(fw),
                                    alpha=0.15, linewidth=0)
        ax.set_title(group_label(model, dataset, many))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=color(fw), marker=marker(fw), markerfacecolor="none",
                      label=fw) for fw in frameworks]
    handles += [Line2D([], [], color="black", linestyle=s, label=m.split("_")[0])
                for m, s in metrics.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return _png(fig)


def speed_bars(summary: pd.DataFrame) -> bytes | None:
    """Median training-step latency per model and framework; the error bar reaches the p90.

    ``summary`` has framework, model, dataset, step_median, step_p90, parallel (the training
    summary, or the benchmark's with one dataset value for all).
    """
    data = summary[summary["step_median"].notna()]
    if data.empty:
        return None
    groups = list(dict.fromkeys(zip(data["model"], data["dataset"])))
    many = data["dataset"].nunique() > 1
    frameworks = ordered(data["framework"])
    bar = 0.8 / len(frameworks)
    fig = Figure(figsize=(max(6.0, 1.6 * len(groups) * len(frameworks) ** 0.5 + 2), 4.2),
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, fw in enumerate(frameworks):
        for g, (model, dataset) in enumerate(groups):
            cell = data[(data["framework"] == fw) & (data["model"] == model)
                        & (data["dataset"] == dataset)]
            if cell.empty:
                continue
            median = float(cell["step_median"].iloc[0])
            p90 = cell["step_p90"].iloc[0]
            upper = max(float(p90) - median, 0.0) if pd.notna(p90) else 0.0
            x = g - 0.4 + bar * (i + 0.5)
            ax.bar(x, median, bar, color=color(fw), hatch="//" if cell["parallel"].iloc[0]
                   else None, edgecolor="white", yerr=[[0.0], [upper]], capsize=3)
    values = data["step_median"].astype(float)
    if values.min() > 0 and values.max() / values.min() > 30:
        ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), [group_label(m, d, many) for m, d in groups])
    ax.set_ylabel("ms per training step (median; bar to p90)")
    ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color=color(fw), label=fw) for fw in frameworks]
    if data["parallel"].any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="ran beside other cells"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def op_times(rows: pd.DataFrame) -> pd.DataFrame:
    """Forward + backward median time per framework, op and size (ms), with the size's number.

    Columns: framework, op, size, size_value, ms, directions, parallel, loaded (any of the
    rows ran beside other cells / under load; ``loaded`` is False when the rows lack it).
    """
    data = rows[(rows["kind"] == "op") & (rows["metric"] == "time_median")
                & rows["value"].notna() & rows["op"].notna()]
    columns = ["framework", "op", "size", "size_value", "ms", "directions", "parallel", "loaded"]
    if data.empty:
        return pd.DataFrame(columns=columns)
    data = data.assign(size=data["size"].fillna("").astype(str),
                       direction=data["direction"].fillna("").astype(str),
                       loaded=data["loaded"] if "loaded" in data else False)
    out = (data.groupby(["framework", "op", "size"], sort=False)
           .agg(ms=("value", "sum"), parallel=("parallel", "any"), loaded=("loaded", "any"),
                directions=("direction", lambda d: "+".join(sorted(set(d), reverse=True))))
           .reset_index())
    out["size_value"] = out["size"].map(size_value)
    return out[columns]


def op_scaling(times: pd.DataFrame) -> bytes | None:
    """Log-log forward + backward time against input size: one panel per op."""
    if times.empty:
        return None
    ops = list(dict.fromkeys(times["op"]))
    fig, axes = _panels(len(ops), width=3.6, height=2.8, ncols=4)
    frameworks = ordered(times["framework"])
    for ax, op in zip(axes, ops):
        panel = times[times["op"] == op].copy()
        if panel["size_value"].isna().any():  # unparsable labels: their order instead
            ranks = {s: i + 1 for i, s in enumerate(sorted(panel["size"].unique()))}
            panel["size_value"] = panel["size"].map(ranks).astype(float)
        for fw in frameworks:
            points = panel[panel["framework"] == fw]
            if points.empty:
                continue
            # Sizes of equal work (e.g. twice the batch, half the image) share an x: the line
            # goes through their mean, the markers show each.
            line = points.groupby("size_value")["ms"].mean()
            ax.plot(line.index, line.values, color=color(fw),
                    linestyle="--" if fw == "reference" else "-")
            ax.plot(points["size_value"], points["ms"], marker=marker(fw), color=color(fw),
                    linestyle="none", markersize=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(op, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[::4]:
        ax.set_ylabel("ms (forward + backward)")
    for ax in axes[-min(4, len(axes)):]:
        ax.set_xlabel("problem size (the size label's numbers multiplied)", fontsize=8)
    handles = [Line2D([], [], color=color(fw), marker=marker(fw), label=fw) for fw in frameworks]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return _png(fig)


def reference_speedup(times: pd.DataFrame) -> pd.DataFrame:
    """Per op and size both ran: reference ms, numpy ms, and their ratio; ops in the rows'
    order, each op's sizes from small to large."""
    ref = times[times["framework"] == "reference"]
    fast = times[times["framework"] == "numpy"]
    both = ref.merge(fast, on=["op", "size"], suffixes=("_ref", "_np"))
    both = both[both["ms_np"] > 0]
    if both.empty:
        return pd.DataFrame(columns=["op", "size", "reference_ms", "numpy_ms", "speedup"])
    order = {op: i for i, op in enumerate(dict.fromkeys(times["op"]))}
    both = both.assign(rank=both["op"].map(order)).sort_values(
        ["rank", "size_value_ref"], kind="stable")
    return pd.DataFrame({"op": both["op"], "size": both["size"],
                         "reference_ms": both["ms_ref"], "numpy_ms": both["ms_np"],
                         "speedup": both["ms_ref"] / both["ms_np"]}).reset_index(drop=True)


def speedup_bars(speedup: pd.DataFrame) -> bytes | None:
    """How many times faster the NumPy backend is than the loop reference, per op and size."""
    if speedup.empty:
        return None
    fig = Figure(figsize=(7.5, 0.4 * len(speedup) + 1.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    y = np.arange(len(speedup))[::-1]
    ax.barh(y, speedup["speedup"], color=color("numpy"))
    for yi, value in zip(y, speedup["speedup"]):
        label = f"×{value:,.0f}" if value >= 1000 else f"×{value:.3g}"  # not 1.21e+03
        ax.annotate(label, (value, yi), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(y, [f"{op} ({size})" for op, size in zip(speedup["op"], speedup["size"])],
                  fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(0.5, speedup["speedup"].min() / 2), speedup["speedup"].max() * 4)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("reference time / NumPy time (forward + backward, same size)")
    ax.grid(axis="x", alpha=0.3, which="both")
    return _png(fig)


def _parity_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["kind"] == "train") & (rows["metric"] == "parity_loss_dev")
                & (rows["framework"] != "numpy") & rows["step"].notna() & rows["value"].notna()]


def parity_info(rows: pd.DataFrame) -> dict:
    """What the parity plot's caption states: per framework, how many of its steps equal NumPy's
    loss exactly (``{fw: (exact, steps)}``), and whether the frameworks' deviations coincide
    (the same value at every step: one line hides the other)."""
    data = _parity_rows(rows)
    exact = {fw: (int((g["value"] == 0).sum()), len(g))
             for fw, g in ((fw, data[data["framework"] == fw])
                           for fw in ordered(data["framework"]))}
    keyed = data.assign(seed=data["seed"].fillna(-1)).pivot_table(
        index=["model", "dataset", "seed", "step"], columns="framework", values="value",
        aggfunc="first")
    same = (len(keyed.columns) > 1 and keyed.notna().all(axis=1).all()
            and bool(keyed.nunique(axis=1).eq(1).all()))
    return {"exact": exact, "coincide": list(keyed.columns) if same else None}


def parity(rows: pd.DataFrame, tolerance: float | None = None) -> bytes | None:
    """Per-step deviation of each framework's loss from the NumPy backend's, log scale.

    Steps that match exactly (deviation 0, the same float bits) have no place on a log axis:
    the line breaks there and a hollow marker on the bottom edge shows them, so that
    agreement does not read as a jump. ``tolerance`` is drawn as a dashed line.
    """
    data = _parity_rows(rows)
    if data.empty:
        return None
    groups = _train_groups(data)
    many = data["dataset"].nunique() > 1
    fig, axes = _panels(len(groups))
    frameworks = ordered(data["framework"])
    nonzero = data.loc[data["value"] != 0, "value"].abs()
    tops = list(nonzero) + ([tolerance] if tolerance else [])
    low = min(tops) / 10 if tops else 1e-10
    high = max(tops) * 10 if tops else 1.0
    for ax, (model, dataset) in zip(axes, groups):
        panel = data[(data["model"] == model) & (data["dataset"] == dataset)]
        edge = ax.get_xaxis_transform()  # x in data, y in axes fraction
        for fw in frameworks:
            for _, line in panel[panel["framework"] == fw].groupby("seed", dropna=False):
                line = line.sort_values("step")
                value = line["value"].abs()
                ax.plot(line["step"], value.where(value > 0), color=color(fw), linewidth=1.0,
                        alpha=0.8, marker=marker(fw), markersize=3)
                zero = line[value == 0]
                ax.plot(zero["step"], np.full(len(zero), 0.03), transform=edge,
                        linestyle="none", marker=marker(fw), markersize=5, clip_on=False,
                        markerfacecolor="none", markeredgecolor=color(fw))
        if tolerance:
            ax.axhline(tolerance, color="black", linestyle="--", linewidth=0.9)
            label = f"{tolerance:.0e}".replace("e-0", "e-")  # 1e-4, not 0.0001
            ax.annotate(f"float32 tolerance {label}", (0.01, tolerance),
                        xycoords=("axes fraction", "data"), xytext=(0, 2),
                        textcoords="offset points", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(group_label(model, dataset, many))
        ax.set_xlabel("training step")
        ax.set_ylabel("|loss − NumPy's loss| (normalised)")
        ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color=color(fw), marker=marker(fw), label=fw) for fw in frameworks]
    handles.append(Line2D([], [], color="grey", marker="o", markerfacecolor="none",
                          linestyle="none", label="exact (0) at that step"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return _png(fig)


def curve_spread(rows: pd.DataFrame, quantity: str) -> tuple[list, float, float] | None:
    """How far apart the frameworks' curves of ``quantity`` are: (frameworks, the largest
    difference between two frameworks' seed means at the same model, metric and epoch, the
    range of the values); None without at least one curve."""
    metrics = (f"train_{quantity}", f"test_{quantity}")
    data = rows[(rows["kind"] == "train") & rows["metric"].isin(metrics)
                & rows["epoch"].notna() & rows["value"].notna()]
    if data.empty:
        return None
    means = data.pivot_table(index=["model", "dataset", "metric", "epoch"],
                             columns="framework", values="value", aggfunc="mean")
    frameworks = ordered(means.columns)
    both = means.dropna()
    if len(frameworks) < 2 or both.empty:
        return frameworks, math.inf, 0.0
    largest = float((both.max(axis=1) - both.min(axis=1)).max())
    return frameworks, largest, float(data["value"].max() - data["value"].min())
