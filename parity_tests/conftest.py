"""Shared fixtures: one backend per parameter, skipped with a visible reason when missing."""

from __future__ import annotations

import os
import sys

# Quiet TensorFlow's C++ start-up logging in test output (tests only, never library code).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import impls  # noqa: E402

_EXIT_STATUS = pytest.StashKey[int]()

# Hypothesis profiles for the property tests (test_properties.py). "ci", the default, is
# derandomised: the same examples on every run, so CI is reproducible and its runtime known.
# "deep" draws 20x as many, from fresh random seeds, and keeps failures in the example
# database: python -m pytest --hypothesis-profile=deep -m fuzz
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # test_properties.py skips itself with the reason
    pass
else:
    _slow_is_fine = [HealthCheck.too_slow, HealthCheck.data_too_large,
                     HealthCheck.filter_too_much]
    CI_EXAMPLES = 25
    settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, database=None,
                              deadline=None, print_blob=True,
                              suppress_health_check=_slow_is_fine)
    settings.register_profile("deep", max_examples=20 * CI_EXAMPLES, deadline=None,
                              print_blob=True, suppress_health_check=_slow_is_fine)
    settings.load_profile("ci")


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
