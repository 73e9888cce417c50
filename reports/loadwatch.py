"""How busy the machine was while a run measured: the load of the *other* processes.

On a shared machine timings mean little while other work runs (three runs of the default job
gave NumPy three_layer_cnn step medians of 71.9, 2.14 and 1.52 ms), so every run records:

- ``start``: the 1-minute load average just before its first cell (the machine as the run
  found it);
- ``max``: the largest 1-minute load average of the other processes sampled while it ran.
  A daemon thread samples every ``interval`` seconds the machine's 1-minute load average and
  the run's own runnable threads (the runner and the cells running now, state R or D in
  ``/proc/<pid>/task/<tid>/stat``, the states the kernel counts). The kernel's average is an
  exponential moving average (time constant 60 s) of the machine's runnable threads; the
  sampler keeps the same average of the run's own count and subtracts it, so the run's own
  cells, which push the machine's average towards their thread count within a minute, do not
  mark the run as loaded by themselves.
- per cell, ``start``: that other load when the cell started, ``max``: the largest while it
  ran.

A cell (and the run) is *loaded* when ``max(start, max) >= threads``, the threads the run
keeps busy at a time (threads per cell x cells side by side): other work then wants as many
cores as the cells use. It is a coarse mark: the average lags (a cell of a few seconds sees
little of a burst that started with it), and less load than that already slows a timing when
threads + load exceed the cores. Where /proc is missing (macOS, Windows) the run's own
threads cannot be counted: nothing is sampled and only ``start`` is known.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

TIME_CONSTANT = 60.0  # seconds: the kernel's 1-minute load average


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _running_threads(pid: int, skip: int | None = None) -> int:
    """Threads of ``pid`` the load average counts now: state R (running or runnable) or D
    (uninterruptible sleep, mostly disk I/O); ``skip``: a thread id left out (the sampler)."""
    count = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        if tid == str(skip):
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the
        # last ')'
        if stat[stat.rfind(")") + 2:stat.rfind(")") + 3] in ("R", "D"):
            count += 1
    return count


def is_loaded(load: Iterable[float | None], threads: int) -> bool:
    """Whether any of the other load values reached ``threads`` (None: not measured)."""
    values = [v for v in load if v is not None]
    return bool(values) and max(values) >= threads


class LoadSampler:
    """Samples the other processes' runnable threads in a daemon thread (see the module)."""

    def __init__(self, own_pids: Callable[[], Iterable[int]], interval: float = 0.5):
        self.own_pids, self.interval = own_pids, interval
        self.samples: list[tuple[float, float]] = []  # (monotonic time, other load)
        self._own = 0.0  # the run's own threads, averaged as the kernel averages the machine's
        self._last: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> float | None:
        """One sample of the other processes' 1-minute load (None without /proc)."""
        machine = load_average()
        if machine is None or not os.path.isdir(f"/proc/{os.getpid()}/task"):
            return None
        me = threading.get_native_id()  # the sampler, running while it samples: not work
        own = sum(_running_threads(pid, me) for pid in {os.getpid(), *self.own_pids()})
        now = time.monotonic()
        with self._lock:
            if self._last is not None:
                decay = math.exp(-(now - self._last) / TIME_CONSTANT)
                self._own = self._own * decay + own * (1.0 - decay)
            self._last = now
            other = round(max(0.0, machine - self._own), 2)
            self.samples.append((now, other))
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

    def cell(self, start: float, end: float) -> dict[str, float | None]:
        """``{"start", "max"}`` of a cell that ran from ``start`` to ``end`` (monotonic): the
        other load last sampled before it started, and the largest sampled while it ran."""
        with self._lock:
            before = [v for t, v in self.samples if t <= start]
            during = [v for t, v in self.samples if start < t <= end]
        return {"start": before[-1] if before else None,
                "max": max(during) if during else None}


def run_load(start: float | None, cell_loads: list[dict[str, Any]], threads: int,
             cores: int) -> dict[str, Any]:
    """results.json's top-level ``load``: the load average at start, the largest other load
    sampled during any cell, and whether either reached the run's threads."""
    maxima = [c["max"] for c in cell_loads if c.get("max") is not None]
    peak = max(maxima) if maxima else None
    return {"threads": threads, "cores": cores, "start": start, "max": peak,
            "loaded": is_loaded((start, peak), threads)}


# ---------------------------------------------------------------------------------------------
# the CPU time of the other processes while one cell measures (the benchmark's step cells)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu_seconds(path: str = "/proc/stat") -> float | None:
    """CPU seconds every core of the machine has spent busy since boot (None without /proc):
    user + nice + system + irq + softirq + steal of /proc/stat's "cpu" line (guest time is
    already in user). Steal counts: it is time this machine's cores ran someone else's work."""
    try:
        with open(path, encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def process_cpu_seconds(pid: int | str = "self", path: str | None = None) -> float | None:
    """User + system CPU seconds of process ``pid``, all its threads (``/proc/<pid>/stat``,
    or ``path``, fields 14 and 15, clock ticks as /proc/stat counts them; None without
    /proc)."""
    try:
        with open(path or f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": the fields after comm start at the last ')'
    after = stat[stat.rfind(")") + 2:].split()
    try:
        return (int(after[11]) + int(after[12])) / CLOCK_TICKS
    except (IndexError, ValueError):
        return None


class CpuWatch:
    """The other processes' CPU time while this process measures: ``start()`` before the timed
    work, ``stop()`` after it. Other CPU = the machine's busy CPU time over the window minus
    this process's own (both in the kernel's clock ticks, so a reading is good to about two
    ticks, ``resolution()``). The readers are parameters so that tests can feed known values.
    """

    def __init__(self, machine: Callable[[], float | None] = machine_cpu_seconds,
                 own: Callable[[], float | None] = process_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic,
                 load: Callable[[], float | None] = load_average):
        self.machine, self.own, self.clock, self.load = machine, own, clock, load
        self._start: tuple[float | None, float | None, float] | None = None

    @staticmethod
    def resolution() -> float:
        """Seconds a reading may be off by: a tick at each end of each of the two counters."""
        return 2.0 / CLOCK_TICKS

    def start(self) -> CpuWatch:
        self._start = (self.machine(), self.own(), self.clock())
        return self

    def stop(self) -> dict[str, float | None]:
        """``{"window": s, "other_cpu": s or None, "load_average": 1-min or None}``."""
        if self._start is None:
            raise RuntimeError("CpuWatch.stop() before start()")
        machine0, own0, t0 = self._start
        machine1, own1, t1 = self.machine(), self.own(), self.clock()
        other = None
        if None not in (machine0, own0, machine1, own1):
            other = round(max(0.0, (machine1 - machine0) - (own1 - own0)), 4)
        return {"window": round(t1 - t0, 6), "other_cpu": other, "load_average": self.load()}


def other_cpu_loaded(other_cpu: float | None, window: float | None, threshold: float,
                     resolution: float) -> bool | None:
    """Whether the other processes used more than ``threshold`` cores on average during a
    window (``other_cpu`` seconds in ``window`` seconds), a reading's ``resolution`` given to
    the doubt; None when it was not measured."""
    if other_cpu is None or window is None or window <= 0:
        return None
    return other_cpu - resolution > threshold * window
