"""Training runs, benchmarks and the comparison report (``python -m reports --help``)."""
