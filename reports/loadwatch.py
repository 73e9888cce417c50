"""How busy the machine was while a run measured: the load the run's own work did not make.

On a shared machine timings mean little while other work runs (three runs of the default job
gave NumPy three_layer_cnn step medians of 71.9, 2.14 and 1.52 ms), so every run records:

- ``start``: the 1-minute load average just before its first cell (the machine as the run
  found it);
- during the run, a daemon thread samples every ``interval`` seconds the number of runnable
  threads on the machine (``/proc/loadavg``'s fourth field, "running/total") minus the
  runnable threads of the run's own processes (the runner and the cells running now, from
  ``/proc/<pid>/task/<tid>/stat``): the threads of *other* processes competing for the
  cores. The 1-minute load average cannot be used during the run: the run's own cells push it
  towards their thread count, and it lags a minute behind.
- per cell, ``start``: the mean of those samples over the ``window`` seconds before the cell
  began, and ``max``: the largest mean over ``window`` seconds (or over the whole cell, if
  shorter) while it ran. Instantaneous counts jump at every short-lived process; means over
  a few seconds are what slows a step.

A cell (and the run) is *loaded* when that other load, added to the threads the run itself
keeps busy (threads per cell x cells at a time), oversubscribes the cores:
``max(start, max) + threads >= cores + 0.5``. With as many threads as cores (the default),
half a core's worth of other work on average already marks it. Where /proc is missing (macOS,
Windows) the samples are None and only the load average at start is known.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

MARGIN = 0.5  # threads' worth of other work tolerated before a timing counts as loaded


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _running_on_machine() -> int | None:
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return int(handle.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _running_threads(pid: int) -> int:
    """Threads of ``pid`` in state R (running or runnable) now."""
    count = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the
        # last ')'
        if stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "R":
            count += 1
    return count


def is_loaded(other: Iterable[float | None], threads: int, cores: int) -> bool:
    values = [v for v in other if v is not None]
    return bool(values) and max(values) + threads >= cores + MARGIN


class LoadSampler:
    """Samples the other processes' runnable threads in a daemon thread (see the module)."""

    def __init__(self, own_pids: Callable[[], Iterable[int]], interval: float = 0.5,
                 window: float = 5.0):
        self.own_pids, self.interval, self.window = own_pids, interval, window
        self.samples: list[tuple[float, float]] = []  # (monotonic time, other threads)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> float | None:
        total = _running_on_machine()
        if total is None:
            return None
        own = sum(_running_threads(pid) for pid in {os.getpid(), *self.own_pids()})
        other = float(max(0, total - own))
        with self._lock:
            self.samples.append((time.monotonic(), other))
        return other

    def __enter__(self) -> LoadSampler:
        if self.sample() is not None:  # no /proc: nothing to sample
            self._thread = threading.Thread(target=self._run, name="load-sampler",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def _mean(self, since: float, until: float) -> float | None:
        values = [v for t, v in self.samples if since <= t <= until]
        return round(sum(values) / len(values), 2) if values else None

    def cell(self, start: float, end: float) -> dict[str, float | None]:
        """``{"start", "max"}`` of a cell that ran from ``start`` to ``end`` (monotonic)."""
        with self._lock:
            before = self._mean(start - self.window, start)
            during = [t for t, _ in self.samples if start <= t <= end]
            means = [self._mean(max(start, t - self.window), t) for t in during]
        means = [m for m in means if m is not None]
        return {"start": before, "max": max(means) if means else None}


def run_load(start: float | None, cell_loads: list[dict[str, Any]], threads: int,
             cores: int) -> dict[str, Any]:
    """results.json's top-level ``load``: the load average at start, the largest other load
    sampled during any cell, and whether either oversubscribed the cores."""
    maxima = [c["max"] for c in cell_loads if c.get("max") is not None]
    peak = max(maxima) if maxima else None
    return {"threads": threads, "cores": cores, "start": start, "max": peak,
            "loaded": is_loaded((start, peak), threads, cores)}
