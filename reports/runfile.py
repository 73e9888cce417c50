"""Reading saved runs as the untrusted input they are: ``load_run(path)``.

A results.json may come from an older version, a half-written experiment or a colleague's
crafted file; ``--resume``, ``--baseline`` and ``render`` read it through here. Every field
they use is checked (types, known framework/model/dataset names, plain cell ids that cannot
walk out of the run directory), and any problem raises ``RunFileError``, a ValueError with a
one-line message naming the file and the field: the command line prints it and exits with
status 2. Non-finite numbers are written as null (reports/io.py) and read back as None.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from impls import data as datasets
from reference.models import MODELS

from .cells import ROW_FIELDS, cell_id
from .runspec import CELL_FRAMEWORKS, check_config, plain_name

STATUSES = ("ok", "failed", "skipped")
KINDS = ("train", "ops", "step")
ROW_KINDS = ("train", "op", "step")


class RunFileError(ValueError):
    """A saved run (results.json, baseline) that is missing, unreadable or malformed."""


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; RunFileError naming ``what`` and the file otherwise."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"{what}: {path} not found (expected the results.json of a run of "
                           "`python -m reports run` or `bench`, or its run directory)") from None
    except IsADirectoryError:
        raise RunFileError(f"{what}: {path} is a directory, expected a JSON file") from None
    except OSError as err:
        raise RunFileError(f"{what}: {path} cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise RunFileError(f"{what}: {path} is not UTF-8 text ({err.reason} at byte "
                           f"{err.start})") from None
    except json.JSONDecodeError as err:
        raise RunFileError(f"{what}: {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{what}: {path} holds a JSON {type(data).__name__}, expected an "
                           "object")
    return data


def results_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / "results.json" if path.is_dir() else path


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rows(rows: object, where: str) -> list[dict[str, Any]]:
    """Tidy rows (docs/results.md): a list of objects with the fields' types."""
    if not isinstance(rows, list):
        raise RunFileError(f"{where}: rows: got {type(rows).__name__}, expected a list")
    for i, row in enumerate(rows):
        at = f"{where}: rows[{i}]"
        if not isinstance(row, dict):
            raise RunFileError(f"{at}: got {type(row).__name__}, expected an object")
        unknown = sorted(set(row) - set(ROW_FIELDS))
        if unknown:
            raise RunFileError(f"{at}: got unknown field(s) {', '.join(unknown)}, expected "
                               f"some of {', '.join(ROW_FIELDS)}")
        checks = {"cell": lambda x: isinstance(x, str), "metric": lambda x: isinstance(x, str),
                  "value": lambda x: x is None or _is_number(x),
                  "kind": lambda x: x in ROW_KINDS,
                  "framework": lambda x: x is None or x in CELL_FRAMEWORKS,
                  "model": lambda x: x is None or isinstance(x, str),
                  "dataset": lambda x: x is None or isinstance(x, str),
                  "op": lambda x: x is None or isinstance(x, str),
                  "size": lambda x: x is None or isinstance(x, str),
                  "direction": lambda x: x is None or isinstance(x, str),
                  "unit": lambda x: x is None or isinstance(x, str),
                  "seed": lambda x: x is None or _is_int(x),
                  "epoch": lambda x: x is None or _is_int(x),
                  "step": lambda x: x is None or _is_int(x),
                  "parallel": lambda x: x is None or isinstance(x, bool)}
        for key in ("cell", "metric", "value", "kind"):
            if key not in row:
                raise RunFileError(f"{at}: has no {key!r}")
        for key, ok in checks.items():
            if key in row and not ok(row[key]):
                raise RunFileError(f"{at}: {key}: got {row[key]!r}, which is not valid there")
    return rows


def check_spec(spec: object, where: str) -> dict[str, Any]:
    """A cell spec whose names are known ones (they become file names)."""
    if not isinstance(spec, dict):
        raise RunFileError(f"{where}: spec: got {type(spec).__name__}, expected an object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise RunFileError(f"{where}: spec.kind: got {kind!r}, expected one of "
                           f"{', '.join(KINDS)}")
    if spec.get("framework") not in CELL_FRAMEWORKS:
        raise RunFileError(f"{where}: spec.framework: got {spec.get('framework')!r}, expected "
                           f"one of {', '.join(CELL_FRAMEWORKS)}")
    if kind in ("train", "step") and spec.get("model") not in MODELS:
        raise RunFileError(f"{where}: spec.model: got {spec.get('model')!r}, expected one of "
                           f"{', '.join(MODELS)}")
    if kind == "train":
        if spec.get("dataset") not in datasets.DATASETS:
            raise RunFileError(f"{where}: spec.dataset: got {spec.get('dataset')!r}, expected "
                               f"one of {', '.join(datasets.DATASETS)}")
        if not _is_int(spec.get("seed")) or spec["seed"] < 0:
            raise RunFileError(f"{where}: spec.seed: got {spec.get('seed')!r}, expected an "
                               "integer >= 0")
    return spec


def check_cells(cells: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(cells, list):
        raise RunFileError(f"{where}: cells: got {type(cells).__name__}, expected a list")
    for i, cell in enumerate(cells):
        at = f"{where}: cells[{i}]"
        if not isinstance(cell, dict):
            raise RunFileError(f"{at}: got {type(cell).__name__}, expected an object")
        try:
            plain_name("cell_id", cell.get("cell_id"))
        except ValueError as err:
            raise RunFileError(f"{at}: {err}") from None
        if cell.get("status") not in STATUSES:
            raise RunFileError(f"{at}: status: got {cell.get('status')!r}, expected one of "
                               f"{', '.join(STATUSES)}")
        if "spec" in cell:
            check_spec(cell["spec"], at)
            if cell["cell_id"] != "invalid-spec" and cell["cell_id"] != cell_id(cell["spec"]):
                raise RunFileError(f"{at}: cell_id {cell['cell_id']!r} does not match its spec "
                                   f"({cell_id(cell['spec'])!r})")
        for key in ("error", "note"):
            if cell.get(key) is not None and not isinstance(cell[key], str):
                raise RunFileError(f"{at}: {key}: got {cell[key]!r}, expected text or null")
        for key in ("seconds",):
            if cell.get(key) is not None and not _is_number(cell[key]):
                raise RunFileError(f"{at}: {key}: got {cell[key]!r}, expected a number")
    return cells


def load_run(path: str | os.PathLike, what: str = "run") -> dict[str, Any]:
    """The results.json of a run (``path``: the file or its run directory), fully checked."""
    file = results_path(path)
    data = read_json_object(file, what)
    where = f"{what}: {file}"
    for key in ("run_id", "created", "config", "cells", "rows"):
        if key not in data:
            raise RunFileError(f"{where}: has no {key!r} (expected a results.json of "
                               "`python -m reports run` or `bench`)")
    try:
        plain_name("run_id", data["run_id"])
    except ValueError as err:
        raise RunFileError(f"{where}: {err}") from None
    if not isinstance(data["created"], str):
        raise RunFileError(f"{where}: created: got {data['created']!r}, expected a date")
    try:
        check_config(data["config"], "config")
    except (ValueError, TypeError) as err:
        raise RunFileError(f"{where}: {err}") from None
    if not isinstance(data.get("execution", {}), dict):
        raise RunFileError(f"{where}: execution: expected an object")
    if "complete" in data and not isinstance(data["complete"], bool):
        raise RunFileError(f"{where}: complete: got {data['complete']!r}, expected true/false")
    if data.get("seconds") is not None and not _is_number(data["seconds"]):
        raise RunFileError(f"{where}: seconds: got {data['seconds']!r}, expected a number")
    if "load" in data and not isinstance(data["load"], dict):
        raise RunFileError(f"{where}: load: expected an object")
    check_cells(data["cells"], where)
    check_rows(data["rows"], where)
    return data


def load_results(path: str | os.PathLike, what: str = "baseline") -> dict[str, Any]:
    """An earlier run's results to compare with: its rows (and cells, if it lists them)."""
    file = results_path(path)
    data = read_json_object(file, what)
    where = f"{what}: {file}"
    if "rows" not in data:
        raise RunFileError(f"{where}: has no 'rows' list; expected a results.json")
    check_rows(data["rows"], where)
    if data.get("cells") is not None:
        check_cells(data["cells"], where)
    return data
