"""Known-answer vectors: reference/vectors/*.json, read and run.

Each JSON file is the source of truth for one known answer, from a published tutorial or worked
by hand. Fields:

- ``name``: the file's stem.
- ``source``: where the answer comes from (tutorial and check, or "hand-worked").
- ``how``: how the inputs were made and, for hand-worked answers, how the values were derived.
- ``op``: the function called, a name from docs/api.md (``"conv2d_forward"``,
  ``"softmax_cross_entropy"``, ...) or ``"im2col"`` (see ``run``).
- ``params``: keyword arguments that are not arrays (stride, padding, training, ...).
- ``random`` (optional): ``{"seed": s, "randn": [[name, shape], ...]}``: NumPy's legacy
  generator, ``np.random.seed(s)`` then ``np.random.randn(*shape)`` in the listed order (what the
  tutorials do; the legacy RandomState stream is stable across NumPy versions).
- ``inputs``: name -> array spec (below). ``dy``, if present, is the upstream gradient: the
  matching ``*_backward`` is then run on the forward's cache.
- ``expected``: a list of checks ``{"output", "value"}`` with optional ``"transpose"`` (axes,
  applied first, e.g. back to the tutorial's NHWC), ``"index"`` (``null`` = the whole axis),
  ``"reduce"`` (``"mean"`` or ``"sum"``) and ``"printed"`` (what the tutorial printed, when it
  differs from ``value``: a number/array, or a verbatim string when it is a typo).
- ``tolerance``: ``{"rtol", "atol"}`` for ``np.allclose`` in float64; a check may carry its own
  ``"tolerance"`` (e.g. a value printed to 8 decimals next to one printed in full).
- ``printed_reproduced_with`` (optional): ``{"inputs": {name: spec}}``: input overrides under
  which the numeric ``printed`` values come out, i.e. the tutorial's bug expressed as data.
- ``mistake`` (optional): ``{"function": name}`` or ``{"function": name, "raises": "ValueError"}``
  when the tutorial's mistake is not an input override: ``name`` is a key of
  ``reference.tutorial_mistakes.MISTAKES``, a function that does what the tutorial's code does
  (mistake included) on the vector's inputs; ``reference.tutorial_mistakes.run_mistake(vector)``
  returns its outputs under the names ``run`` uses, and ``failures(vector, ops,
  field="by_mistake", outputs=run_mistake(vector))`` compares them. A check's optional
  ``"by_mistake"`` is the value the tutorial's code gives there (the code prints nothing, or
  prints the same as ``printed``); ``"raises"`` names the exception the code raises instead.
- Fields other than these are data a test reads itself (e.g. ``autodiff_dlogits``: the
  gradient autodiff gives through the tutorial's loss expression).
- ``notes``: conventions, tutorial bugs, why a value differs from the printed one.

Array specs: a nested list or number (float64); ``{"ints": [...]}`` (int64, e.g. class labels);
``{"linspace": [start, stop], "shape": [...]}`` (``np.linspace(start, stop, num=prod(shape))``
reshaped); ``{"randn": name, "transpose": [...], "reshape": [...], "scale": s}`` (one of the
``random`` draws, then those steps in that order, each optional); ``{"output": "y"}`` (``dy``
only: the forward's own output, as some tutorials do); ``{"list": [spec, ...]}`` and
``{"dict": {key: spec}}`` (containers, for ``l2_regularization``).

``run(vector, ops)`` works with any module that has the docs/api.md functions (reference.ops or
a backend), so the same vectors can test every backend.

Note: this module shadows the data directory ``vectors/`` for ``import`` (a module beats a
directory without ``__init__.py``); the directory is only ever read as files.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = ["DIRECTORY", "names", "load", "build_inputs", "run", "select", "failures"]

DIRECTORY = Path(__file__).resolve().parent / "vectors"

# Names of what each backward returns, in order (every other backward returns just "dx").
_BACKWARD_OUTPUTS = {
    "conv2d": ("dx", "dw", "db"),
    "linear": ("dx", "dw", "db"),
    "batchnorm": ("dx", "dgamma", "dbeta"),
}
# Names of what the loss functions return.
_LOSS_OUTPUTS = {
    "softmax_cross_entropy": ("loss", "dlogits"),
    "mse": ("loss", "dpred"),
    "l2_regularization": ("loss", "grads"),
}


def names() -> list[str]:
    """The stems of every vector file, sorted."""
    return sorted(p.stem for p in DIRECTORY.glob("*.json"))


def load(name: str) -> dict:
    """The vector ``name`` (a stem from ``names()``, ".json" optional) as parsed JSON."""
    stem = name[:-5] if name.endswith(".json") else name
    path = DIRECTORY / f"{stem}.json"
    if not path.is_file():
        raise ValueError(f"name: got {name!r}, expected one of {names()}")
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _random_draws(vector: dict) -> dict[str, np.ndarray]:
    spec = vector.get("random")
    if spec is None:
        return {}
    state = np.random.RandomState(spec["seed"])  # same stream as np.random.seed + np.random.randn
    return {name: state.randn(*shape) for name, shape in spec["randn"]}


def _array(spec: object, draws: dict[str, np.ndarray], dtype: np.dtype) -> object:
    if not isinstance(spec, dict):
        return np.asarray(spec, dtype=dtype)
    if "ints" in spec:
        return np.asarray(spec["ints"], dtype=np.int64)
    if "list" in spec:
        return [_array(item, draws, dtype) for item in spec["list"]]
    if "dict" in spec:
        return {key: _array(item, draws, dtype) for key, item in spec["dict"].items()}
    if "linspace" in spec:
        start, stop = spec["linspace"]
        shape = tuple(spec["shape"])
        return np.linspace(start, stop, num=int(np.prod(shape))).reshape(shape).astype(dtype)
    if "randn" in spec:
        a = draws[spec["randn"]]
        if "transpose" in spec:
            a = a.transpose(spec["transpose"])
        if "reshape" in spec:
            a = a.reshape(spec["reshape"])
        if "scale" in spec:
            a = a * spec["scale"]
        return np.ascontiguousarray(a, dtype=dtype)
    raise ValueError(f"unknown array spec {spec!r}")


def build_inputs(vector: dict, overrides: dict | None = None,
                 dtype: np.dtype = np.float64) -> dict[str, object]:
    """The vector's inputs as arrays (float inputs in ``dtype``), with ``overrides`` applied.

    ``dy`` given as ``{"output": ...}`` stays a spec: only ``run`` can resolve it.
    """
    draws = _random_draws(vector)
    specs = {**vector["inputs"], **(overrides or {})}
    return {name: spec if isinstance(spec, dict) and "output" in spec
            else _array(spec, draws, np.dtype(dtype))
            for name, spec in specs.items()}


def _im2col(ops: ModuleType, x: np.ndarray, kernel_size: object, stride: object = 1,
            padding: object = 0) -> np.ndarray:
    """Rows = output pixels (n, i, j), columns = window cells (c, p, q), through conv2d_forward.

    A convolution with the one-hot basis of filters (filter m picks window cell m) copies each
    window out, so im2col is checked with nothing but the op under test.
    """
    kh, kw = kernel_size if isinstance(kernel_size, (list, tuple)) else (kernel_size,) * 2
    cells = x.shape[1] * kh * kw
    basis = np.eye(cells, dtype=x.dtype).reshape(cells, x.shape[1], kh, kw)  # (C*kH*kW, C, kH, kW)
    y, _ = ops.conv2d_forward(x, basis, np.zeros(cells, dtype=x.dtype), stride, padding)
    return y.transpose(0, 2, 3, 1).reshape(-1, cells)  # (N*OH*OW, C*kH*kW)


def run(vector: dict, ops: ModuleType, inputs: dict | None = None,
        dtype: np.dtype = np.float64) -> dict[str, object]:
    """Call the vector's op (and its backward when there is a ``dy``) on ``ops``.

    Returns the array inputs under their own names (so a check can look at a generated input,
    e.g. to confirm a random stream) and the named outputs: ``y`` (forwards),
    ``new_running_mean``/``new_running_var`` (batchnorm), the gradients (``dx``, ``dw``, ``db``,
    ``dgamma``, ``dbeta``), ``loss`` and ``dlogits``/``dpred``/``grads`` (losses; also
    ``grads[key]`` per item), ``col`` (im2col).
    """
    inputs = dict(build_inputs(vector, dtype=dtype) if inputs is None else inputs)
    given = {name: a for name, a in inputs.items() if isinstance(a, np.ndarray)}
    dy = inputs.pop("dy", None)
    op, params = vector["op"], vector.get("params", {})
    if op == "im2col":
        return {**given, "col": _im2col(ops, **inputs, **params)}
    result = getattr(ops, op)(**inputs, **params)
    if op in _LOSS_OUTPUTS:
        out = {**given, **dict(zip(_LOSS_OUTPUTS[op], result))}
        grads = out.get("grads")
        items = grads.items() if isinstance(grads, dict) else enumerate(grads or ())
        out.update({f"grads[{key}]": g for key, g in items})
        return out
    out = {**given, "y": result[0]}
    if op == "batchnorm_forward":
        out["new_running_mean"], out["new_running_var"] = result[2], result[3]
    if dy is not None:
        if isinstance(dy, dict):  # {"output": name}: the forward's own output as upstream
            dy = out[dy["output"]]
        family = op.removesuffix("_forward")
        grads = getattr(ops, f"{family}_backward")(dy, result[1])
        grads = grads if isinstance(grads, tuple) else (grads,)
        out.update(zip(_BACKWARD_OUTPUTS.get(family, ("dx",)), grads))
        out["dy"] = dy
    return out


def select(outputs: dict[str, object], check: dict) -> np.ndarray:
    """The part of ``outputs[check["output"]]`` a check looks at: transpose, index, reduce."""
    a = np.asarray(outputs[check["output"]], dtype=np.float64)
    if "transpose" in check:
        a = a.transpose(check["transpose"])
    if "index" in check:
        a = a[tuple(slice(None) if i is None else i for i in check["index"])]
    reduce = check.get("reduce")
    if reduce is not None:
        a = np.asarray({"mean": np.mean, "sum": np.sum}[reduce](a))
    return a


def _describe(check: dict) -> str:
    text = check["output"]
    if "transpose" in check:
        text += f".transpose{tuple(check['transpose'])}"
    if "index" in check:
        text += "[" + ", ".join(":" if i is None else str(i) for i in check["index"]) + "]"
    if check.get("reduce"):
        text = f"{check['reduce']}({text})"
    return text


def failures(vector: dict, ops: ModuleType | None, field: str = "value",
             inputs: dict | None = None, dtype: np.dtype = np.float64,
             outputs: dict | None = None) -> list[str]:
    """Every check of ``vector`` whose ``field`` ("value", "printed" or "by_mistake") ``ops``
    misses (or ``outputs``, when given: outputs computed elsewhere, e.g. by a tutorial mistake).

    Checks without a numeric ``field`` are skipped; an empty list means all agree within the
    vector's tolerance. Use ``field="printed"`` with ``inputs=build_inputs(vector,
    vector["printed_reproduced_with"]["inputs"])`` to confirm a tutorial bug's explanation.
    """
    if outputs is None:
        outputs = run(vector, ops, inputs=inputs, dtype=dtype)
    problems = []
    for check in vector["expected"]:
        want = check.get(field)
        if want is None or isinstance(want, str):
            continue
        got = select(outputs, check)
        want = np.asarray(want, dtype=np.float64)
        tol = check.get("tolerance", vector["tolerance"])
        if got.shape != want.shape or not np.allclose(got, want, rtol=tol["rtol"],
                                                      atol=tol["atol"]):
            problems.append(f"{vector['name']}: {_describe(check)} = {got.tolist()}, "
                            f"expected {field} {want.tolist()}")
    return problems
