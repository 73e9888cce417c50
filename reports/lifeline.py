"""A cell process dies with its runner, and takes its temporary directory with it.

The runner starts each cell in a session of its own (so that Ctrl-C reaches the runner only,
which then ends the cells) and gives it a temporary directory (spec, record, weights). If the
runner itself is killed (SIGKILL, an OOM kill), nothing would end the cell: it would train on
for hours under ``--full`` (no time limit) and leave its directory behind. So the cell
(``python -m reports cell ... --parent-pid PID --cleanup-dir DIR``) watches its runner:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends SIGTERM when the parent dies
  (strictly, when the parent's thread that started the cell ends: the runner's pool thread
  waits on the cell until it ends, so the two coincide). The handler removes the directory and
  exits. Python runs signal handlers only between bytecodes of the main thread, which can sit
  in one long BLAS call, so the watchdog below is always started too.
- everywhere: a daemon thread polls ``os.getppid()`` every ``interval`` seconds; once it is
  no longer the runner's pid (the cell was re-parented), it removes the directory and ends
  the process with ``os._exit``. Threads run while the main thread is in NumPy, PyTorch or
  TensorFlow kernels (they release the GIL).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXIT_ORPHANED = 3  # the status an orphaned cell exits with (nobody is left to read it)


def _clean_exit(cleanup_dir: Path | None) -> None:
    if cleanup_dir is not None:
        shutil.rmtree(cleanup_dir, ignore_errors=True)
    os._exit(EXIT_ORPHANED)


def die_with_parent(parent_pid: int, cleanup_dir: str | os.PathLike | None = None,
                    interval: float = 0.5) -> str:
    """Arrange for this process to remove ``cleanup_dir`` and exit once ``parent_pid`` is no
    longer its parent; returns how ("pdeathsig+watchdog" or "watchdog")."""
    directory = None if cleanup_dir is None else Path(cleanup_dir)
    how = "watchdog"
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            signal.signal(signal.SIGTERM, lambda signum, frame: _clean_exit(directory))
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
                how = "pdeathsig+watchdog"
        except (OSError, AttributeError, ValueError):
            pass
    if os.getppid() != parent_pid:  # the runner died before the line above: too late for it
        _clean_exit(directory)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                _clean_exit(directory)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    return how
