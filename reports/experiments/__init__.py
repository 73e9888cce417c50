"""The tutorials' experiments, re-run in every framework: ``python -m reports experiment NAME``.

Each module holds one experiment (its settings, what one framework computes, its figures);
common.py what they share; cli.py the subcommand's options; runner.py the run: every
framework in its own process, from the same initial weights on the same batches, then one run
directory with tidy rows, figures with the frameworks overlaid and a report saying how far
apart they are (docs/experiments.md).
"""

from __future__ import annotations

import importlib

NAMES = ("optimizer_paths", "optimizer_comparison", "weight_init", "batchnorm", "overfitting")


def get(name: str):
    """The Experiment ``name`` (its module imports no framework)."""
    if name not in NAMES:
        raise ValueError(f"name: got {name!r}, expected one of {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").EXPERIMENT


def add_experiment_parser(sub) -> None:
    """Register the ``experiment`` subcommand (reports/__main__.py)."""
    from .cli import add_parser

    add_parser(sub)
