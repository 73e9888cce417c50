"""The first convolution's filters after training, one picture per framework (cs231n's figure).

Every framework starts a (model, dataset, seed) from the same canonical weights and sees the
same batches, so its trained first-layer filters should be the same: drawn side by side they
are a parity check one can see, and the line under them says how far apart they really are.

The pictures follow cs231n's ``visualize_grid``: each filter is scaled on its own to [0, 1]
(its smallest weight black, its largest white) and the filters are laid out in a square grid
with a one-pixel border. A filter that reads three channels is one RGB tile; any other count
gives one grey tile per input channel, a row per filter (one channel: a square grid of grey
tiles). The initial filters are drawn again from the run's seed (reference/models.py), the
trained ones are read from the run's ``weights/<cell id>.npz``. Nothing here imports a backend.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .plots import ordered
from .runspec import plain_name

BORDER = 1.0  # the grid's border value: white, as the page behind it
LEVELS = 255  # a PNG channel's grey levels: differences smaller than 1/255 of a range vanish
# Input sizes tried when the run does not record its dataset's shape: the first conv's initial
# weights are the first array drawn from the seed's generator (reference/models.py
# initial_weights draws in layer order), so they depend on its own shape and initialiser only,
# and any input size the model accepts gives the same ones.
_SIZES = (28, 32, 64, 96)


@dataclass
class FilterSet:
    """One model's first-layer filters in one run: the initial ones and each framework's."""

    model: str
    dataset: str
    seed: int
    name: str  # the weight's canonical name, "conv1.weight"
    initial: np.ndarray | None  # (C_out, C_in, kH, kW); None when it could not be redrawn
    trained: dict[str, np.ndarray] = field(default_factory=dict)  # framework -> array
    missing: dict[str, str] = field(default_factory=dict)  # framework -> why it has none
    initial_note: str | None = None  # why ``initial`` is None

    def key(self) -> tuple[str, str]:
        return (self.model, self.dataset)


# ---------------------------------------------------------------------------------------------
# pictures


def _check_filters(name: str, w: object) -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise TypeError(f"{name}: got {type(w).__name__}, expected a NumPy array "
                        "(C_out, C_in, kH, kW)")
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"{name}: got shape {w.shape}, expected a non-empty "
                         "(C_out, C_in, kH, kW) conv weight")
    if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"{name}: got dtype {w.dtype}, expected a real dtype")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name}: got {int(np.sum(~np.isfinite(w)))} non-finite weights, "
                         "expected finite ones (a filter with NaN has no picture)")
    return w.astype(np.float64)


def normalised(w: np.ndarray) -> np.ndarray:
    """Each filter (over its channels and kernel) scaled to [0, 1]; a constant one is 0.5."""
    w = _check_filters("w", w)
    low = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - low
    out = np.full_like(w, 0.5)
    np.divide(w - low, span, out=out, where=span > 0)
    return out


def filter_grid(w: np.ndarray) -> np.ndarray:
    """The picture of conv weights ``w`` (C_out, C_in, kH, kW): (H, W, 3) RGB when C_in = 3,
    else (H, W) grey, values in [0, 1], tiles separated by a one-pixel white border."""
    tiles = normalised(w)
    c_out, c_in, kh, kw = tiles.shape
    if c_in == 3:
        tiles = tiles.transpose(0, 2, 3, 1)[:, None]  # (C_out, 1, kH, kW, 3)
        cols = math.ceil(math.sqrt(c_out))
        rows = math.ceil(c_out / cols)
        cells = [(i // cols, i % cols, tiles[i, 0]) for i in range(c_out)]
    elif c_in == 1:
        cols = math.ceil(math.sqrt(c_out))
        rows = math.ceil(c_out / cols)
        cells = [(i // cols, i % cols, tiles[i, 0]) for i in range(c_out)]
    else:  # a row per filter, a column per input channel
        rows, cols = c_out, c_in
        cells = [(i, j, tiles[i, j]) for i in range(c_out) for j in range(c_in)]
    shape = (rows * (kh + 1) + 1, cols * (kw + 1) + 1) + ((3,) if c_in == 3 else ())
    grid = np.full(shape, BORDER)
    for r, c, tile in cells:
        grid[1 + r * (kh + 1):1 + r * (kh + 1) + kh, 1 + c * (kw + 1):1 + c * (kw + 1) + kw] = tile
    return grid


def grid_png(grid: np.ndarray, title: str) -> bytes:
    """A picture of ``filter_grid``'s output as PNG bytes, square pixels, no smoothing."""
    fig = Figure(figsize=(2.4, 2.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# the run's filters


def first_conv(weights: dict[str, np.ndarray]) -> str | None:
    """The name of the first 4-D array (the canonical weights are saved in layer order)."""
    return next((k for k, v in weights.items() if np.ndim(v) == 4), None)


def _plain(cell_id: str) -> bool:
    try:
        plain_name("cell id", cell_id)
    except ValueError:
        return False
    return True


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _facts_shape(environment: Any, dataset: str) -> tuple[tuple[int, ...] | None, int | None]:
    """The dataset's input (C, H, W) and class count from environment.json, if recorded."""
    facts = environment.get("datasets") if isinstance(environment, dict) else None
    fact = facts.get(dataset) if isinstance(facts, dict) else None
    if not isinstance(fact, dict):
        return None, None
    shape = (fact.get("x_train") or {}).get("shape") if isinstance(fact.get("x_train"),
                                                                   dict) else None
    classes = fact.get("num_classes")
    ok_shape = (isinstance(shape, list) and len(shape) == 4
                and all(isinstance(v, int) and v > 0 for v in shape[1:]))
    return (tuple(shape[1:]) if ok_shape else None,
            classes if isinstance(classes, int) and classes >= 2 else None)


def initial_filters(spec: dict[str, Any], name: str, shape: tuple[int, ...],
                    input_shape: tuple[int, ...] | None = None,
                    num_classes: int | None = None) -> np.ndarray | None:
    """The canonical initial value of weight ``name`` for a train cell's ``spec`` (its model,
    seed, dtype, init and model options), or None when the model cannot be resolved to it."""
    from reference import models

    options = dict(spec.get("model_options") or {})
    if spec.get("init") is not None:
        options["init"] = spec["init"]
    if spec.get("weight_decay") is not None:
        options["weight_decay"] = spec["weight_decay"]
    sizes = [input_shape] if input_shape else [(shape[1], s, s) for s in _SIZES]
    for size in sizes:
        try:
            model = models.resolve(spec["model"], size, num_classes or 10, **options)
            weights = models.initial_weights(model, int(spec.get("seed", 0)),
                                             spec.get("dtype", "float32"))
        except (TypeError, ValueError, KeyError):
            continue
        value = weights.get(name)
        if value is not None and value.shape == tuple(shape):
            return value
    return None


def _trained_cells(results: dict) -> list[dict]:
    cells = results.get("cells") if isinstance(results, dict) else None
    return [c for c in cells or [] if isinstance(c, dict) and isinstance(c.get("spec"), dict)
            and c["spec"].get("kind") == "train" and isinstance(c.get("cell_id"), str)]


def filter_sets(run_dir: str | Path, results: dict, environment: Any = None) -> list[FilterSet]:
    """Per (model, dataset) whose weights have a conv: the first conv's filters at the run's
    lowest seed (0 in every preset), initial and per framework, in the run's order."""
    weights_dir = Path(run_dir) / "weights"
    cells = _trained_cells(results)
    seeds = [c["spec"].get("seed") for c in cells if isinstance(c["spec"].get("seed"), int)]
    if not seeds:
        return []
    seed = min(seeds)
    sets: dict[tuple[str, str], FilterSet] = {}
    pending: dict[tuple[str, str], dict[str, str]] = {}
    for cell in cells:
        spec = cell["spec"]
        if spec.get("seed") != seed:
            continue
        key = (str(spec.get("model")), str(spec.get("dataset")))
        fw = str(spec.get("framework"))
        path = weights_dir / f"{cell['cell_id']}.npz"
        why = None
        weights: dict[str, np.ndarray] = {}
        if not _plain(cell["cell_id"]):  # results.json is data: no path comes from it
            why = "its cell id is not a file name"
        elif cell.get("status") != "ok":
            why = f"its cell {cell.get('status', 'did not finish')}"
        elif not path.is_file():
            why = f"no weights/{path.name}"
        else:
            try:
                weights = _read_npz(path)
            except (OSError, ValueError, zipfile.BadZipFile) as err:
                why = f"weights/{path.name} could not be read ({type(err).__name__})"
        if why is not None:
            if key in sets:
                sets[key].missing[fw] = why
            else:
                pending.setdefault(key, {})[fw] = why
            continue
        name = first_conv(weights)
        if name is None:
            continue  # no conv (mlp): no filters to draw
        if key not in sets:
            input_shape, classes = _facts_shape(environment, key[1])
            initial = initial_filters(spec, name, weights[name].shape, input_shape, classes)
            sets[key] = FilterSet(key[0], key[1], seed, name, initial,
                                  missing=pending.pop(key, {}),
                                  initial_note=None if initial is not None else
                                  "the initial filters could not be drawn again from the cell's "
                                  "spec")
        fs = sets[key]
        if name != fs.name or weights[name].shape != _shape(fs):
            fs.missing[fw] = (f"its first conv is {name} {weights[name].shape}, not "
                              f"{fs.name} {_shape(fs)}")
            continue
        fs.trained[fw] = weights[name]
    for fs in sets.values():
        fs.trained = {fw: fs.trained[fw] for fw in ordered(fs.trained)}
    return list(sets.values())


def _shape(fs: FilterSet) -> tuple[int, ...]:
    first = next(iter(fs.trained.values()), None)
    return tuple((first if first is not None else fs.initial).shape)


# ---------------------------------------------------------------------------------------------
# how far apart


@dataclass(frozen=True)
class Deviation:
    """The largest difference between two frameworks' trained filters."""

    value: float  # max |a - b| over every weight
    pair: tuple[str, str]
    scale: float  # the largest |weight| of the two
    levels: int  # the largest difference between their pictures, in grey levels of 255
    moved: float | None  # the largest |trained - initial| over every framework (None: no initial)


def deviation(fs: FilterSet) -> Deviation | None:
    """None with fewer than two frameworks' filters (or non-finite ones)."""
    finite = {fw: w.astype(np.float64) for fw, w in fs.trained.items() if np.all(np.isfinite(w))}
    names = list(finite)
    best = None
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            value = float(np.max(np.abs(finite[a] - finite[b])))
            if best is None or value > best[0]:
                best = (value, (a, b))
    if best is None:
        return None
    a, b = best[1]
    # the pictures' difference over every pair (their per-filter scaling is not linear)
    pictures = {fw: np.round(filter_grid(w) * LEVELS) for fw, w in finite.items()}
    levels = max(int(np.max(np.abs(pictures[x] - pictures[y])))
                 for i, x in enumerate(names) for y in names[i + 1:])
    scale = max(float(np.max(np.abs(finite[a]))), float(np.max(np.abs(finite[b]))))
    moved = None
    if fs.initial is not None:
        start = fs.initial.astype(np.float64)
        moved = max(float(np.max(np.abs(w - start))) for w in finite.values())
    return Deviation(best[0], (a, b), scale, levels, moved)


# ---------------------------------------------------------------------------------------------
# the report's images and section


def image_name(fs: FilterSet, which: str, many_datasets: bool) -> str:
    """plots/<name>.png: filters-<model>[-<dataset>]-<framework or "initial">."""
    parts = ["filters", fs.model, *([fs.dataset] if many_datasets else []), which]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def images(sets: list[FilterSet]) -> dict[str, bytes]:
    """Every picture of ``sets``, by image name: the initial filters, then each framework's."""
    many = len({fs.dataset for fs in sets}) > 1
    out = {}
    for fs in sets:
        if fs.initial is not None:
            out[image_name(fs, "initial", many)] = grid_png(filter_grid(fs.initial),
                                                            "initial (every framework)")
        for fw, w in fs.trained.items():
            if np.all(np.isfinite(w)):
                out[image_name(fs, fw, many)] = grid_png(filter_grid(w), f"{fw}, trained")
    return out


def _g(value: float) -> str:
    return f"{value:.2g}"


def deviation_text(fs: FilterSet) -> list:
    """The sentence under a model's pictures: how far apart the frameworks' filters are."""
    from .render.doc import code

    dev = deviation(fs)
    nonfinite = [fw for fw, w in fs.trained.items() if not np.all(np.isfinite(w))]
    bad = ([f" {', '.join(nonfinite)}: non-finite trained weights, no picture."]
           if nonfinite else [])
    missing = [f" {fw}: {why}." for fw, why in fs.missing.items()]
    if dev is None:
        only = ", ".join(fw for fw in fs.trained if fw not in nonfinite) or "no framework"
        return [f"Only {only} has trained ", code(fs.name), " here: nothing to compare.",
                *bad, *missing]
    a, b = dev.pair
    shown = ("the pictures are identical to the grey level" if dev.levels == 0 else
             f"the pictures differ by up to {dev.levels} of {LEVELS} grey levels")
    moved = ("" if dev.moved is None else
             f" Training moved the filters by up to {_g(dev.moved)} from the initial ones.")
    return ["Largest difference between two frameworks' trained ", code(fs.name),
            f": {_g(dev.value)} ({a} against {b}), {_g(dev.value / dev.scale if dev.scale else 0)}"
            f" of their largest |weight| {_g(dev.scale)}; {shown}.{moved}", *bad, *missing]


def filters_section(sets: list[FilterSet], images: dict[str, bytes]) -> Any:
    """The report's "First-layer filters" section (None when no model has a conv)."""
    from .render.doc import Figure, Para, Section, Subheading

    if not sets:
        return None
    many = len({fs.dataset for fs in sets}) > 1
    section = Section("First-layer filters")
    seed = sets[0].seed
    section.add(Para(
        f"The first convolution's filters of each model at seed {seed}, as cs231n draws them: "
        "each filter scaled on its own to [0, 1] (its smallest weight black, its largest "
        "white), one RGB square when it reads three channels, one grey square per input "
        "channel otherwise. Every framework started from the same filters (the first picture) "
        "and saw the same batches, so its trained filters should look the same; the line "
        "under each model says how far apart they are."))
    for fs in sets:
        section.add(Subheading(f"{fs.model} / {fs.dataset}" if many else fs.model),
                    Para(*deviation_text(fs)))
        if fs.initial is None:
            section.add(Para(f"No initial picture: {fs.initial_note}."))
        for which in (["initial"] if fs.initial is not None else []) + list(fs.trained):
            name = image_name(fs, which, many)
            if name not in images:
                continue
            title = ("initial filters" if which == "initial"
                     else f"{which}'s trained filters")
            section.add(Figure(name, f"{fs.model}: {title}",
                               f"{title} ({fs.name}, {' x '.join(map(str, _shape(fs)))})"))
    return section
