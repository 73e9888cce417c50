"""Run directories: created atomically and uniquely, ``<out>/latest`` swapped atomically.

Two runs started in the same second into one ``--out`` must never share a directory: a run
directory is claimed with ``mkdir`` (which fails if the name exists), never with exists()
then create. ``latest`` is a relative symlink made under a temporary name and renamed over
the old one; where symlinks are refused it is a copy, made under a temporary name and swapped
in by renames, retried until it wins, so that concurrent runs never see half a copy.

Which directory a run writes to is decided here too: a new one, an existing ``--run-id``
continued only with the same config, or the one ``--resume`` names (its saved run checked,
options that would change it refused, its data unchanged).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .cells import cell_id
from .runfile import RunFileError, load_run, read_json_object
from .runspec import UsageError, spec_hash

DEFAULT_OUT = Path("reports") / "out"
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


# ---------------------------------------------------------------------------------------------
# which directory a run writes to: a new one, a continued one, or the one --resume names


def _given(args: argparse.Namespace, options: tuple[str, ...]) -> list[str]:
    return [f"--{name.replace('_', '-')}" for name in options
            if getattr(args, name, None) not in (None, False, [])]


def saved_run(args: argparse.Namespace, command: str,
              matrix_options: tuple[str, ...]) -> dict[str, Any] | None:
    """The checked results.json of the run --resume names (None without --resume).

    Options that would change the saved run are refused, not ignored: a resumed run is the
    saved matrix with the saved settings (a cell is reused only with the same spec anyway).
    """
    if args.resume is None:
        return None
    given = _given(args, matrix_options)
    if given:
        raise UsageError("--resume", f"{', '.join(given)} would change the run in "
                                     f"{args.resume}, which --resume finishes with its saved "
                                     "matrix and settings: leave them out, or start a new run")
    saved = load_run(args.resume, "--resume")
    maker = "bench" if saved["config"]["mode"] == "bench" else "run"
    if maker != command:
        raise UsageError("--resume", f"{args.resume} is a run of `python -m reports {maker}`; "
                                     f"finish it with: python -m reports {maker} --resume "
                                     f"{args.resume}")
    return saved


def _differences(saved: dict[str, Any], config: dict[str, Any]) -> list[str]:
    mine = json.loads(json.dumps(config))
    return [f"{key} {saved.get(key)!r} there, {mine.get(key)!r} here"
            for key in sorted(set(saved) | set(mine), key=str) if saved.get(key) != mine.get(key)]


def claim_run_dir(args: argparse.Namespace, config: dict[str, Any],
                  saved: dict[str, Any] | None) -> tuple[Path, str, bool]:
    """``(run directory, created, continuing)``: the --resume directory, or a new one claimed
    atomically (reports/rundir.py); an existing --run-id is continued only when its saved
    config is this one, and refused otherwise."""
    if saved is not None:
        return Path(args.resume), saved["created"], True
    run_dir, created = create_run_dir(args.out or DEFAULT_OUT, args.run_id)
    if created:
        return run_dir, now(), False
    try:
        existing = load_run(run_dir, "--run-id")
    except RunFileError as err:
        raise UsageError("--run-id", f"{run_dir} exists and holds no readable run ({err}); "
                                     "choose another --run-id") from None
    changed = _differences(existing["config"], config)
    if changed:
        raise UsageError("--run-id", f"{run_dir} holds a run with another config "
                                     f"({'; '.join(changed)}): choose another --run-id, or "
                                     f"finish that run as it was with --resume {run_dir}")
    print(f"note: continuing run {run_dir} (same config): its finished cells are kept",
          file=sys.stderr)
    return run_dir, existing["created"], True


def same_data(saved_env: Path, facts: dict[str, Any]) -> None:
    """--resume: refuse when the dataset files changed since the run started."""
    try:
        saved = read_json_object(saved_env, "--resume").get("datasets") or {}
    except RunFileError:
        return  # an older run without environment.json: nothing to compare with
    for name, fact in facts.items():
        before = saved.get(name) if isinstance(saved, dict) else None
        if not isinstance(before, dict):
            continue
        changed = [part for part in ("x_train", "y_train", "x_test", "y_test")
                   if isinstance(before.get(part), dict)
                   and before[part].get("sha256") != fact[part]["sha256"]]
        if changed:
            raise UsageError("--resume", f"the {name} data changed since the run started "
                                         f"({', '.join(changed)}: other sha256): the finished "
                                         "cells saw other data; start a new run")
