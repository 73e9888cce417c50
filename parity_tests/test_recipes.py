"""The tutorials' training recipes (reference/recipes.py) and ``--recipe`` (reports/recipes.py).

Every recipe's fields are checked against the project (the model resolves with its options on
the tutorial's data shape, the initialiser exists, the optimizer builds in NumPy with the
recipe's form), the tutorials' numbers are pinned, and the command line is run: without the
tutorial's files it exits 2 naming them; on a stand-in (digits, a few hundred images, one
epoch) it trains, records the overrides and the stand-in label, and the report puts the
tutorial's accuracy beside the measured one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impls
from impls import data as datasets
from reference import models as ref_models
from reference.recipes import RECIPES, Recipe, Reported, recipe
from reports import runspec
from reports.__main__ import main
from reports.render import build
from reports.render.recipe import recipe_section

NP = impls.load("numpy")
STAND_IN = ["--dataset", "digits", "--dataset-option", "n_train=200", "--dataset-option",
            "n_test=100", "--epochs", "1", "--no-progress"]


def _tutorial_shape(r: Recipe) -> tuple[tuple[int, int, int], int]:
    info = datasets.dataset_info(r.dataset)
    return info.input_shape, info.num_classes


# ---------------------------------------------------------------------------------------------
# the recipes as data


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_model_resolves_on_the_tutorial_data_with_its_options(name):
    r = RECIPES[name]
    shape, classes = _tutorial_shape(r)
    spec = ref_models.resolve(r.model, shape, classes, **r.model_kwargs())
    assert spec.name == r.model and spec.num_classes == classes
    if r.init is not None:
        assert spec.init == r.init
    if r.weight_decay is not None:
        assert spec.weight_decay == r.weight_decay


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_optimizer_builds_in_numpy_with_its_form(name):
    r = RECIPES[name]
    shape, classes = _tutorial_shape(r)
    model = NP.build_model(r.model, input_shape=shape, num_classes=classes, seed=0,
                           **r.model_kwargs())
    opt = NP.build_optimizer(r.optimizer, model, lr=r.lr, **r.optimizer_options)
    options = dict(r.optimizer_options)
    assert (opt.name, opt.lr, opt.form) == (r.optimizer, r.lr, options.pop("form", "textbook"))
    assert {k: opt.hyper[k] for k in options} == options  # eps as the tutorial has it


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_fields_name_what_the_project_has(name):
    r = RECIPES[name]
    assert r.dataset in datasets.DATASETS and r.model in ref_models.MODELS
    if r.init is not None:
        runspec.check_init(r.init)
    assert re.fullmatch(r"00[0-4]_[0-9a-f]{16}\.txt", r.tutorial)  # a file of ../shared/seeds
    assert r.reported.source.startswith(r.tutorial[:3]) and r.settings_source
    assert json.loads(json.dumps(r.as_dict()))["name"] == name
    assert r.summary().startswith(r.title)


def test_the_tutorials_numbers():
    # (dataset, epochs, batch, optimizer, lr, reported value, relation) as the tutorials give
    expected = {
        "simple_cnn": ("mnist", 20, 100, "adam", 0.001, 0.9882, "="),
        "deep_cnn": ("mnist", 20, 100, "adam", 0.001, 0.99, ">="),
        "two_layer_net": ("mnist", 17, 100, "sgd", 0.1, 0.9435, "="),
        "three_layer_cnn": ("cifar10", 1, 50, "adam", 1e-3, None, "none"),
        "cifar_lrn_cnn": ("cifar10", 100, 64, "adam", 1e-4, 0.697, "="),
        "signs_cnn": ("signs", 150, 64, "adam", 0.005, None, "none"),
        "signs_scratch_cnn": ("signs", 10, 64, "adam", 0.001, None, "none"),
    }
    assert set(expected) == set(RECIPES)
    for name, want in expected.items():
        r = RECIPES[name]
        assert (r.dataset, r.epochs, r.batch_size, r.optimizer, r.lr, r.reported.value,
                r.reported.relation) == want, name
    assert RECIPES["two_layer_net"].iterations == 10000
    assert dict(RECIPES["two_layer_net"].model_options) == {"hidden": (50,),
                                                            "activation": "sigmoid"}
    assert dict(RECIPES["three_layer_cnn"].model_options) == {"hidden": 500}
    assert RECIPES["three_layer_cnn"].weight_decay == 1e-3
    assert RECIPES["three_layer_cnn"].init == "normal(0.001)"
    assert RECIPES["simple_cnn"].init == "normal(0.01)"
    # the forms: 002's Adam adds 1e-7 to the uncorrected root; TF1's Adam the same with 1e-8
    assert dict(RECIPES["simple_cnn"].optimizer_options) == {"form": "eps_hat", "eps": 1e-7}
    assert dict(RECIPES["cifar_lrn_cnn"].optimizer_options) == {"form": "eps_hat", "eps": 1e-8}
    assert dict(RECIPES["signs_scratch_cnn"].optimizer_options) == {"form": "textbook",
                                                                    "eps": 1e-8}
    assert RECIPES["simple_cnn"].reported.describe() == "98.82 %"
    assert RECIPES["deep_cnn"].reported.describe() == "at least 99 %"
    assert RECIPES["signs_cnn"].reported.describe() == "none reported"


def test_cifar_recipe_keeps_the_models_per_layer_l2_and_init():
    r = RECIPES["cifar_lrn_cnn"]
    assert r.init is None and r.weight_decay is None  # None: the model's own, per layer
    spec = ref_models.resolve(r.model, (3, 32, 32), 10, **r.model_kwargs())
    decay = {layer.name: layer.weight_decay for layer in spec.layers
             if layer.kind in ("Conv2d", "Linear")}
    assert decay == {"conv1": 0.005, "conv2": 0.005, "fc1": 0.004, "fc2": 0.004}
    assert spec.init == "truncated_normal(0.05)"


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs: got 0, expected an integer >= 1"),
    ({"batch_size": True}, "batch_size: got True, expected an integer >= 1"),
    ({"lr": float("nan")}, "lr: got nan, expected a finite number > 0"),
    ({"optimizer": "adamw"}, "optimizer: got 'adamw', expected one of sgd"),
    ({"name": "Simple CNN"}, "name: got 'Simple CNN', expected a lower-case identifier"),
    ({"weight_decay": -1.0}, "weight_decay: got -1.0, expected None or a number >= 0"),
    ({"model_options": [("hidden", 5)]}, "model_options: got [('hidden', 5)], expected a "
                                         "mapping"),
])
def test_a_bad_recipe_field_is_refused_by_name(change, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        dataclasses.replace(RECIPES["simple_cnn"], **change)


def test_a_bad_reported_value_and_an_unknown_recipe_are_refused():
    with pytest.raises(ValueError, match=r"value: got 98.82, expected a fraction in \[0, 1\]"):
        Reported(98.82, "=", "MNIST test", "98.82 %", "002")
    with pytest.raises(ValueError, match="value: got 0.5 with relation 'none'"):
        Reported(0.5, "none", "MNIST test", "-", "002")
    with pytest.raises(ValueError, match="recipe: got 'lenet', expected one of simple_cnn"):
        recipe("lenet")
    with pytest.raises(TypeError):  # frozen, and the options are read-only
        RECIPES["three_layer_cnn"].model_options["hidden"] = 100


# ---------------------------------------------------------------------------------------------
# the command line


@pytest.mark.parametrize("command, name, files", [
    ("run", "simple_cnn", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    ("train", "signs_cnn", ["train_signs.h5", "test_signs.h5"]),
    ("run", "cifar_lrn_cnn", ["cifar-10-batches-py/data_batch_1",
                              "cifar-10-batches-py/test_batch"]),
])
def test_without_the_tutorials_files_it_names_them_and_the_stand_in(tmp_path, capsys, command,
                                                                    name, files):
    out = tmp_path / "out"
    code = main([command, "--recipe", name, "--data-dir", str(tmp_path), "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"python -m reports {command}: error: argument --recipe: "
                              f"recipe {name} trains on")
    for f in files:
        assert f in message
    assert "--data-dir DIR" in message
    assert (f"python -m reports {command} --recipe {name} --dataset fashion-mnist" in message
            and "--dataset digits" in message and "not comparable" in message)
    assert not out.exists()  # checked before any run directory or training


def test_without_a_data_dir_it_says_none_was_given(capsys):
    assert main(["train", "--recipe", "two_layer_net", "--no-progress"]) == 2
    assert "MNIST, which cannot be read here (no --data-dir given)" in capsys.readouterr().err


def test_a_recipe_run_refuses_another_model_and_full(tmp_path, capsys):
    assert main(["run", "--recipe", "two_layer_net", "--models", "simple_cnn",
                 "--out", str(tmp_path), *STAND_IN]) == 2
    assert "argument --models: got simple_cnn, but recipe two_layer_net trains mlp" in (
        capsys.readouterr().err)
    assert main(["run", "--recipe", "two_layer_net", "--full", "--out", str(tmp_path),
                 *STAND_IN]) == 2
    assert "argument --full:" in capsys.readouterr().err
    assert main(["train", "--recipe", "two_layer_net", "--model", "simple_cnn",
                 "--out", str(tmp_path / "t"), *STAND_IN]) == 2
    assert "argument --model: got simple_cnn" in capsys.readouterr().err


def test_help_lists_the_recipes(capsys):
    for command in ("run", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for name, r in RECIPES.items():
            assert f"{name}: {r.title}" in text
        assert "98.82 %" in text


def test_train_recipe_on_a_stand_in_records_the_label_and_the_overrides(tmp_path, capsys):
    out = tmp_path / "train"
    assert main(["train", "--recipe", "two_layer_net", *STAND_IN, "--lr", "0.5",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    config = result["config"]
    block = config["recipe"]
    # the recipe's settings where none was typed, the typed ones where given
    assert (config["model"], config["optimizer"], config["batch_size"], config["lr"]) == (
        "mlp", "sgd", 100, 0.5)
    assert config["model_options"] == {"hidden": [50], "activation": "sigmoid",
                                       "weight_decay": 0.0, "init": "normal(0.01)"}
    assert block["stand_in"] is True and block["comparable"] is False
    assert block["label"] == "scikit-learn's 8x8 digits stand-in for MNIST: not comparable"
    assert block["overrides"] == {"epochs": {"recipe": 17, "used": 1},
                                  "lr": {"recipe": 0.1, "used": 0.5},
                                  "dataset_options": {"recipe": {},
                                                      "used": {"n_train": 200, "n_test": 100}}}
    assert len(result["epochs"]) == 1
    with open(out / "epochs.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert (row["recipe"], row["stand_in"], row["dataset"]) == (
        "two_layer_net", block["label"], "digits")
    last = printed.strip().splitlines()[-2]
    assert last.startswith("recipe two_layer_net: the tutorial's test accuracy 94.35 % (MNIST "
                           "test set, 10,000 images); measured on scikit-learn's 8x8 digits: ")
    assert last.endswith("(scikit-learn's 8x8 digits stand-in for MNIST: not comparable)")


# ---------------------------------------------------------------------------------------------
# a recipe run and its report


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory) -> Path:
    """two_layer_net on 200 digits for one epoch, in NumPy: one train cell, rendered."""
    out = tmp_path_factory.mktemp("recipe-runs")
    assert main(["run", "--recipe", "two_layer_net", *STAND_IN, "--frameworks", "numpy",
                 "--run-id", "recipe", "--out", str(out)]) == 0
    return out / "recipe"


def test_a_recipe_run_trains_the_recipes_model_with_its_options(recipe_run):
    results = json.loads((recipe_run / "results.json").read_text())
    config = results["config"]
    assert config["mode"] == "recipe" and config["ops"] is False
    assert (config["models"], config["datasets"], config["epochs"], config["lr"],
            config["optimizer"], config["batch_size"], config["init"]) == (
        ["mlp"], ["digits"], 1, 0.1, "sgd", 100, "normal(0.01)")
    [cell] = results["cells"]
    assert cell["status"] == "ok"
    assert cell["spec"]["model_options"] == {"hidden": [50], "activation": "sigmoid",
                                             "weight_decay": 0.0}
    with np.load(recipe_run / "weights" / "train-numpy-mlp-digits-seed0.npz") as w:
        assert w["fc1.weight"].shape == (50, 64) and w["fc2.weight"].shape == (10, 50)
    runspec.check_config(config, "results.json")  # a saved recipe run is valid input
    broken = {**config, "recipe": {**config["recipe"], "name": "lenet"}}
    with pytest.raises(ValueError, match="results.json: recipe: got"):
        runspec.check_config(broken, "results.json")
    with pytest.raises(ValueError, match="results.json: recipe: got"):
        runspec.check_config({**config, "mode": "quick"}, "results.json")


def test_the_report_puts_the_tutorials_accuracy_beside_the_measured(recipe_run):
    md = (recipe_run / "report.md").read_text()
    html = (recipe_run / "report.html").read_text()
    label = "scikit-learn's 8x8 digits stand-in for MNIST: not comparable"
    assert md.count(label) == 2  # the banner at the top and the section's
    section = md.split("## Tutorial vs measured", 1)[1].split("\n## ", 1)[0]
    assert "| the tutorial (reported) | MNIST | 17 | 94.35 % | — |" in section
    row = next(line for line in section.splitlines() if line.startswith("| numpy (measured)"))
    results = json.loads((recipe_run / "results.json").read_text())
    final = [r["value"] for r in results["rows"] if r["metric"] == "test_accuracy"][-1]
    assert row.startswith(f"| numpy (measured) | scikit-learn's 8x8 digits (stand-in) | 1 | "
                          f"{100 * final:.2f} % | not comparable |")
    assert "**Not the tutorial's settings**: epochs 1 (recipe: 17)" in section
    assert '<section class="recipe">' in html and 'id="tutorial-vs-measured"' in html
    assert "stand-in for MNIST: not comparable" in html.replace("&#39;", "'")


def test_a_comparable_run_shows_the_difference_in_points():
    reported = RECIPES["simple_cnn"].reported.as_dict()
    block = {"name": "simple_cnn", "recipe": {**RECIPES["simple_cnn"].as_dict(),
                                              "reported": reported},
             "dataset": "mnist", "dataset_title": "MNIST", "recipe_dataset_title": "MNIST",
             "stand_in": False, "label": None, "overrides": {}, "comparable": True}
    results = {"config": {"recipe": block, "epochs": 20}}
    s = pd.DataFrame([{"framework": "numpy", "accuracy_mean": 0.9850, "seeds": "1/1 ok"},
                      {"framework": "torch", "accuracy_mean": 0.9900, "seeds": "1/1 ok"}])
    section = recipe_section(results, s)
    table = next(b for b in section.blocks if b.kind == "table")
    assert [row[4] for row in table.rows] == ["—", "-0.32 points", "+0.18 points"]
    assert [row[3] for row in table.rows] == ["98.82 %", "98.50 %", "99.00 %"]
    assert not any(b.kind == "banner" for b in section.blocks)


def test_a_run_without_a_recipe_has_no_recipe_section(tmp_path):
    results = {"run_id": "x", "config": {"mode": "quick"}, "cells": [], "rows": []}
    (tmp_path / "results.json").write_text(json.dumps(results))
    _, top, sections, _ = build(tmp_path)
    assert all(s.title != "Tutorial vs measured" for s in sections)
    assert not any("stand-in" in str(b) for b in top)


def test_a_recipe_run_resumes_with_its_saved_settings(recipe_run, capsys):
    assert main(["run", "--resume", str(recipe_run), "--recipe", "two_layer_net"]) == 2
    assert "argument --resume: --recipe would change the run" in capsys.readouterr().err
    assert main(["run", "--resume", str(recipe_run), "--no-render", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "1 cells (1 already done, 0 skipped, 0 to run" in printed
    assert "recipe two_layer_net: the tutorial's test accuracy 94.35 %" in printed


def test_a_train_cell_passes_the_recipes_model_and_optimizer_options(monkeypatch):
    from reports import cells, training

    seen = {}
    setup = training.setup

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return setup(*args, **kwargs)

    monkeypatch.setattr(training, "setup", spy)
    spec = {"kind": "train", "framework": "numpy", "model": "simple_cnn", "dataset": "digits",
            "seed": 0, "epochs": 1, "optimizer": "adam", "lr": 1e-3, "batch_size": 50,
            "init": "normal(0.01)", "dataset_options": {"n_train": 100, "n_test": 50},
            "model_options": {"weight_decay": 0.0},
            "optimizer_options": {"form": "eps_hat", "eps": 1e-7}}
    # train_cell itself: run_cell would also limit this process's BLAS threads for good
    measured = cells.train_cell(cells.with_defaults(spec))
    assert any(row["metric"] == "test_accuracy" for row in measured["rows"])
    assert seen["model_options"] == {"weight_decay": 0.0, "init": "normal(0.01)"}
    assert seen["optimizer_options"] == {"form": "eps_hat", "eps": 1e-7}
