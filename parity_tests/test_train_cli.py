"""`python -m reports train`: results per epoch, atomic files, a clean stop on Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import impls
from reports import training
from reports.__main__ import build_parser, main
from reports.runner import build_config as run_build_config

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


# ---------------------------------------------------------------------------------------------
# issue 10: outputs checked first, never another run's; one set of defaults; errors as typed


def _refuse_training(monkeypatch):
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("training started"))


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as stop:  # argparse refused an option
        return stop.code


def test_train_never_overwrites_a_run_directory(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "results.json").write_text('{"run_id": "run"}')
    _refuse_training(monkeypatch)
    assert main(["train", "--no-progress", "--out", str(run_dir)]) == 2
    assert (run_dir / "results.json").read_text() == '{"run_id": "run"}'
    err = capsys.readouterr().err
    assert "argument --out:" in err and "already holds results" in err


@pytest.mark.parametrize("kind", ["a-file", "unwritable"])
def test_train_checks_out_before_training(tmp_path, monkeypatch, capsys, kind):
    out = tmp_path / "file"
    out.write_text("")
    if kind == "unwritable":
        out = Path("/sys/cnn-rosetta-train")  # refused even to root
    _refuse_training(monkeypatch)
    assert main(["train", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --out:" in err and "cannot write there" in err


def test_train_and_run_share_their_defaults():
    parser = build_parser()
    train = parser.parse_args(["train"])
    run = parser.parse_args(["run"])
    assert (train.lr, train.batch_size, train.init, train.epochs, train.optimizer,
            train.dtype, train.dataset) == (2e-3, 32, "he_normal", 3, "adam", "float32",
                                            "digits")
    config = run_build_config(run)
    assert (config["lr"], config["batch_size"], config["init"], config["epochs"],
            config["optimizer"], config["dtype"], config["datasets"]) == (
        train.lr, train.batch_size, train.init, train.epochs, train.optimizer, train.dtype,
        [train.dataset])


@pytest.mark.parametrize("command", ["train", "run", "bench"])
def test_help_shows_every_default_once(command, capsys):
    assert exit_code([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    for chunk in text.split(" --")[1:]:
        assert chunk.count("(default") <= 1, chunk


def test_train_prints_each_epoch_once_and_no_bar_off_a_terminal(tmp_path, capsys):
    # no --no-progress: stderr is not a terminal here, so there is no bar either
    assert main(["train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2",
                 "--out", str(tmp_path / "t")]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("epoch 1:") == 1 and captured.out.count("epoch 2:") == 1
    assert "\r" not in captured.err and "it/s" not in captured.err and "step/s" not in \
        captured.err


@pytest.mark.parametrize("argv, message", [
    (["--dropout", "1.5"], "argument --dropout: got '1.5', expected a finite number in [0, 1)"),
    (["--hidden", "10,x"], "argument --hidden: got '10,x', expected comma-separated positive "
                           "integers like 100,100,100"),
    (["--lr", "nan"], "argument --lr: got 'nan'"),
    (["--init", "normal(-1)"], "argument --init: got 'normal(-1)'"),
    (["--dataset", "mnist"], "error: --data-dir: got None, expected the directory holding"),
])
def test_train_errors_name_the_option_as_typed(tmp_path, capsys, argv, message):
    assert exit_code(["train", "--no-progress", "--out", str(tmp_path / "t"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "data_dir" not in err.split("expected")[0] and "p:" not in err


@pytest.mark.skipif(not impls.is_available("tensorflow"), reason="tensorflow is not installed "
                    "(pip install 'cnn-rosetta[tensorflow]'): its start-up log is not tested")
def test_train_silences_tensorflow_start_up_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "reports", "train", "--framework",
                           "tensorflow", "--model", "mlp", "--dataset", "synthetic",
                           "--dataset-option", "n_train=64", "--epochs", "1",
                           "--out", str(tmp_path / "t")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # no cpu_feature_guard, absl or oneDNN lines


def test_train_takes_the_models_options(tmp_path, capsys):
    # three_layer_cnn's one hidden size by --hidden, any model option by --model-option
    out = tmp_path / "t"
    assert main(["train", "--model", "three_layer_cnn", "--dataset", "synthetic", "--epochs",
                 "1", "--hidden", "7", "--model-option", "batchnorm=true", "--no-progress",
                 "--dataset-option", "n_train=8", "--dataset-option", "n_test=4",
                 "--out", str(out)]) == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["model_options"]["hidden"] == 7 and config["model_options"]["batchnorm"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "three_layer_cnn", "--hidden", "500,2"],
     "argument --hidden: got 500,2, but three_layer_cnn has one hidden layer: give one size"),
    (["--model", "three_layer_cnn", "--model-option", "bogus=1"],
     "options: got ['bogus'] for model 'three_layer_cnn', expected some of ['batchnorm', "
     "'hidden']"),
    (["--model", "simple_cnn", "--model-option", "norm2=true"],
     "options: got ['norm2'] for model 'simple_cnn', which takes none"),
])
def test_train_refuses_options_the_model_lacks(tmp_path, capsys, argv, message):
    assert exit_code(["train", "--no-progress", "--dataset", "synthetic", "--out",
                      str(tmp_path / "t"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
