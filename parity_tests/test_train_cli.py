"""`python -m reports train`: results per epoch, atomic files, a clean stop on Ctrl-C."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import impls
from reports import training
from reports.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_train_command_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--framework", "numpy", "--model", "simple_cnn", "--dataset",
                 "digits", "--epochs", "2", "--batch-size", "64", "--lr", "0.005",
                 "--init", "he_normal", "--no-progress", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert result["config"]["framework"] == "numpy"
    assert result["interrupted"] is False
    assert [row["epoch"] for row in result["epochs"]] == [1, 2]
    last = result["epochs"][-1]
    assert 0.8 < last["test_accuracy"] <= 1.0  # it learns: 10 classes, chance is 0.1
    assert last["train_loss"] < result["epochs"][0]["train_loss"]
    assert result["environment"]["numpy"] == np.__version__
    with open(out / "epochs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and float(rows[1]["test_accuracy"]) == last["test_accuracy"]
    assert "epoch 2: train loss" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def test_ctrl_c_keeps_the_finished_epochs(tmp_path, monkeypatch):
    backend = impls.load("numpy")
    calls = {"n": 0}
    real_step = backend.train_step

    def interrupted_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 22:  # digits: 1347 / 64 -> 22 steps per epoch; stop inside epoch 2
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(backend, "train_step", interrupted_step)
    out = tmp_path / "run"
    code = main(["train", "--epochs", "3", "--batch-size", "64", "--no-progress",
                 "--out", str(out)])
    assert code == 130
    result = json.loads((out / "results.json").read_text())
    assert result["interrupted"] is True
    assert [row["epoch"] for row in result["epochs"]] == [1]


@pytest.mark.parametrize("argument,value,fragment", [
    ("epochs", 0, "epochs: got 0"),
    ("batch_size", -1, "batch_size: got -1"),
    ("seed", -3, "seed: got -3"),
])
def test_train_rejects_bad_arguments(argument, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        training.train("numpy", **{argument: value}, progress=False)


def test_train_command_reports_errors_cleanly():
    proc = subprocess.run([sys.executable, "-m", "reports", "train", "--framework", "numpy",
                           "--dataset", "mnist", "--no-progress", "--epochs", "1",
                           "--out", "/nonexistent/never-written"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "data_dir" in proc.stderr
