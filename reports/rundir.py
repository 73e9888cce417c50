"""Run directories: created atomically and uniquely, ``<out>/latest`` swapped atomically.

Two runs started in the same second into one ``--out`` must never share a directory: a run
directory is claimed with ``mkdir`` (which fails if the name exists), never with exists()
then create. ``latest`` is a relative symlink made under a temporary name and renamed over
the old one; where symlinks are refused it is a copy, made under a temporary name and swapped
in by renames, retried until it wins, so that concurrent runs never see half a copy.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .cells import cell_id
from .runspec import UsageError, spec_hash

LATEST_NAMES = ("latest", "latest-bench")  # <out>/latest: `run`'s newest; latest-bench: bench's


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(
        timespec="seconds")


def check_out(out: Path) -> Path:
    """``out`` made (with its parents) and writable, or a UsageError naming --out."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{os.getpid()}-{time.time_ns()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        if isinstance(err, FileExistsError) or (out.exists() and not out.is_dir()):
            reason = "it is a file, not a directory"
        raise UsageError("--out", f"got {str(out)!r}: cannot create run directories there "
                                  f"({reason})") from None
    return out


def check_run_id(run_id: str) -> str:
    if (not run_id or "/" in run_id or os.sep in run_id or run_id.startswith(".")
            or run_id in LATEST_NAMES):
        raise UsageError("--run-id", f"got {run_id!r}, expected a plain directory name not "
                                     f"starting with '.', other than "
                                     f"{' and '.join(repr(n) for n in LATEST_NAMES)}")
    return run_id


def create_run_dir(out: Path, run_id: str | None) -> tuple[Path, bool]:
    """``(run directory, created)``: a new directory claimed by mkdir (the date and time, with
    -2, -3, ... when taken), or the existing ``<out>/<run_id>`` (created False: the caller
    decides whether it may continue that run)."""
    check_out(out)
    if run_id is not None:
        path = out / check_run_id(run_id)
        try:
            path.mkdir()
        except FileExistsError:
            return path, False
        except OSError as err:
            raise UsageError("--out", f"cannot create {str(path)!r} ({err.strerror})") from None
        return path, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        path = out / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path, True
    raise UsageError("--out", f"{str(out)!r} has 9,999 runs started in second {stamp}")


def _aside(latest: Path, name: str) -> None:
    """Move whatever is at ``latest`` out of the way (to a unique hidden name) and delete it."""
    old = latest.with_name(f".{name}-old-{os.getpid()}-{time.time_ns()}")
    try:
        os.replace(latest, old)
    except FileNotFoundError:  # another run moved it first
        return
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def update_latest(run_dir: Path, name: str = "latest", *, attempts: int = 50) -> Path:
    """Point ``<out>/<name>`` at ``run_dir``: a relative symlink made beside it and renamed
    over the old one (atomic); where symlinks are refused, a copy made under a temporary name,
    then renamed into place (a rename cannot replace a non-empty directory, so the old copy is
    renamed aside first; if another run's copy lands in between, the swap is retried)."""
    latest = run_dir.parent / name
    tmp = run_dir.parent / f".{name}-{os.getpid()}-{time.time_ns()}"
    try:
        os.symlink(run_dir.name, tmp, target_is_directory=True)
    except OSError:
        shutil.copytree(run_dir, tmp, symlinks=True)
    for _ in range(attempts):
        try:
            os.replace(tmp, latest)
            return latest
        except OSError:  # a directory (a copy) or a symlink of the other kind is in the way
            _aside(latest, name)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)
    raise OSError(f"{latest}: could not be replaced in {attempts} attempts (other runs keep "
                  "replacing it)")


def read_records(run_dir: Path, specs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The saved records of the planned cells, by id: unreadable ones, and those whose spec
    is not the planned one (another lr, batch size, ...: ``spec_hash`` differs), left out."""
    out = {}
    for spec in specs:
        cid = cell_id(spec)
        path = run_dir / "cells" / f"{cid}.json"
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(rec, dict) and isinstance(rec.get("spec"), dict)
                and spec_hash(rec["spec"]) == spec_hash(spec)):
            out[cid] = rec
    return out
