"""Shared fixtures: one backend per parameter, skipped with a visible reason when missing."""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up logging in test output (tests only, never library code).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import impls  # noqa: E402


def load_or_skip(name: str):
    """The backend module, or a pytest skip that says which framework is missing."""
    if not impls.is_available(name):
        pytest.skip(f"backend {name!r} skipped: its framework is not installed "
                    f"(pip install 'cnn-rosetta[{name}]')")
    return impls.load(name)


@pytest.fixture(params=impls.BACKENDS)
def backend(request):
    """Each backend in turn: numpy, torch, tensorflow."""
    return load_or_skip(request.param)
