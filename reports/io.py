"""Atomic output: a file is either its old whole self or its new whole self, never half.

Files get the mode the umask gives a new file (0644 under the usual umask 022), not the 0600 of
the temporary file they are written through, so a web server or a colleague can read a report.
JSON is strict: non-finite numbers (NaN, +-Infinity, which Python's json would write as the
non-JSON literals NaN and Infinity) are written as null.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """This process's umask, read without changing it where the OS allows.

    os.umask can only be read by setting it, which for a moment gives every other thread's new
    files the temporary mask; Linux (>= 4.7) shows it in /proc/self/status instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename;
    the file gets mode 0o666 & ~umask, as a file created by open() would."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())  # mkstemp made it 0600
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see write_bytes_atomic)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_npz_atomic(path: str | os.PathLike, arrays: dict) -> Path:
    """np.savez to ``path`` atomically (see write_bytes_atomic)."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def _jsonable(value: Any) -> Any:
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()  # NumPy scalars and 0-d arrays
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"value: got {type(value).__name__}, expected something JSON can hold")


def finite_or_none(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, +-inf, NumPy's too) replaced by None, and
    NumPy scalars and arrays, tuples and Paths turned into what JSON holds."""
    if isinstance(data, float):
        return float(data) if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    if data is None or isinstance(data, (str, int)):
        return data
    return finite_or_none(_jsonable(data))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as strict JSON (non-finite numbers as null), atomically."""
    text = json.dumps(finite_or_none(data), indent=2, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def write_csv_atomic(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Rows of dicts as CSV; the columns are the union of the keys, in first-seen order."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())
