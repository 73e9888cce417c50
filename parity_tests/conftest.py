"""Shared fixtures: one backend per parameter, skipped with a visible reason when missing."""

from __future__ import annotations

import os
import sys

# Quiet TensorFlow's C++ start-up logging in test output (tests only, never library code).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import impls  # noqa: E402

_EXIT_STATUS = pytest.StashKey[int]()


def load_or_skip(name: str, module_level: bool = False):
    """The backend module, or a pytest skip that says which framework is missing
    (``module_level=True`` at the top of a test file skips the whole file)."""
    if not impls.is_available(name):
        pytest.skip(f"backend {name!r} skipped: its framework is not installed "
                    f"(pip install 'cnn-rosetta[{name}]')", allow_module_level=module_level)
    return impls.load(name)


@pytest.fixture(params=impls.BACKENDS)
def backend(request):
    """Each backend in turn: numpy, torch, tensorflow."""
    return load_or_skip(request.param)


# PyTorch and TensorFlow loaded into one process can crash in their C++ teardown at
# interpreter exit ("corrupted size vs. prev_size", seen here once in several runs), which
# would turn a green run red after the summary. Once the session is over and reported, leave
# without that teardown, keeping pytest's exit status.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    status = config.stash.get(_EXIT_STATUS, None)
    if status is not None and "torch" in sys.modules and "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
