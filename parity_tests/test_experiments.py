"""The tutorials' experiments (reports/experiments/, `python -m reports experiment`) at tiny sizes:
rows and columns, the frameworks agreeing where they must (float64, same weights, same batches,
same dropout masks), the run directory and the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

for _module in ("pandas", "matplotlib", "jinja2", "sklearn"):  # digits comes with scikit-learn
    pytest.importorskip(_module, reason=f"the experiments need {_module}: pip install "
                                        "'cnn-rosetta[report]'")

import pandas as pd  # noqa: E402

from parity_tests.conftest import load_or_skip  # noqa: E402
from reference import optimizers as R  # noqa: E402
from reports.__main__ import main  # noqa: E402
from reports.experiments import NAMES, common, get  # noqa: E402
from reports.experiments.runner import make_config, run_experiment  # noqa: E402

BACKENDS = ("numpy", "torch", "tensorflow")

# each experiment at a few seconds' size; the columns every row has
TINY = {
    "optimizer_paths": dict(steps=8),
    "optimizer_comparison": dict(n_train=64, hidden=[8] * 4, batch_size=32, iterations=4,
                                 optimizers=["Momentum", "Adam"]),
    "weight_init": dict(n_train=64, hidden=[8] * 4, batch_size=32, iterations=3,
                        hist_samples=40, hist_units=8, hist_layers=3, inits=["He (sqrt(2/n))"]),
    "batchnorm": dict(n_train=80, hidden=[8] * 5, batch_size=40, epochs=1,
                      weight_scales=[0.01]),
    "overfitting": dict(n_train=40, hidden=[8] * 6, batch_size=20, epochs=2,
                        variants=["weight decay", "dropout"]),
}
COLUMNS = {
    "optimizer_paths": ["framework", "optimizer", "step", "x", "y"],
    "optimizer_comparison": ["framework", "optimizer", "step", "loss"],
    "weight_init": ["framework", "init", "step", "loss"],
    "batchnorm": ["framework", "weight_scale", "batchnorm", "epoch", "train_loss",
                  "train_accuracy"],
    "overfitting": ["framework", "variant", "epoch", "train_loss", "train_accuracy",
                    "test_accuracy"],
}


def _run(name: str, framework: str) -> tuple[pd.DataFrame, dict]:
    load_or_skip(framework)
    config = make_config(name, overrides=TINY.get(name))
    result = get(name).run(framework, config)
    return pd.DataFrame(result["rows"]), result.get("tables", {})


def _rows(name: str, framework: str) -> pd.DataFrame:
    return _run(name, framework)[0]


def _count(name: str) -> int:
    """Rows one framework gives at the tiny size."""
    t = TINY.get(name, {})
    return {"optimizer_paths": len(R.PATHS) * (t.get("steps", 0) + 1),
            "optimizer_comparison": len(t.get("optimizers", ())) * t.get("iterations", 0),
            "weight_init": len(t.get("inits", ())) * t.get("iterations", 0),
            "batchnorm": len(t.get("weight_scales", ())) * 2 * (t.get("epochs", 0) + 1),
            "overfitting": len(t.get("variants", ())) * (t.get("epochs", 0) + 1)}[name]


@pytest.mark.parametrize("framework", BACKENDS)
def test_optimizer_paths_follow_the_float_reference(framework):
    rows = _rows("optimizer_paths", framework)
    assert list(rows.columns) == COLUMNS["optimizer_paths"]
    assert len(rows) == _count("optimizer_paths")
    for name, settings in R.PATHS.items():
        settings = dict(settings)
        expected = np.array(R.path(name, settings.pop("lr"), TINY["optimizer_paths"]["steps"],
                                   R.START, **settings))
        got = rows[rows["optimizer"] == name].sort_values("step")[["x", "y"]].to_numpy()
        assert got[0].tolist() == list(R.START)  # step 0 is the start
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", sorted(set(TINY) - {"optimizer_paths"}))
def test_the_frameworks_give_the_same_curves(name):
    """Float64, same weights, same batches, same masks: the curves agree to rounding."""
    runs = [_run(name, f) for f in BACKENDS]
    for frame, _ in runs:
        assert list(frame.columns) == COLUMNS[name]
        assert len(frame) == _count(name)
        assert frame[COLUMNS[name][-1]].notna().all()
    frame = pd.concat([f for f, _ in runs])
    deviations = common.deviations(frame, get(name))
    assert deviations and all(r["framework"] in ("torch", "tensorflow") for r in deviations)
    worst = common.largest(deviations)
    assert worst["deviation"] < 1e-9, worst
    # the figures draw from the three frameworks' rows
    tables = {k: [row for _, t in runs for row in t.get(k, [])] for k in runs[0][1]}
    figures, blocks = get(name).report(frame, tables, make_config(name, overrides=TINY[name]))
    assert figures and all(png.startswith(b"\x89PNG") for png in figures.values())
    assert blocks


def test_weight_init_histograms_count_every_activation():
    load_or_skip("numpy")
    config = make_config("weight_init", overrides=TINY["weight_init"])
    result = get("weight_init").run("numpy", config)
    hist = pd.DataFrame(result["tables"]["histograms"])
    per_layer = hist.groupby(["activation", "weights", "layer"])["count"].sum()
    # every activation of sigmoid lies in (0, 1); ReLU's beyond 1 fall outside the bins
    sigmoid = per_layer.loc["sigmoid"]
    assert (sigmoid == config["hist_samples"] * config["hist_units"]).all()
    assert len(per_layer) == 6 * config["hist_layers"]
    # the book's point: std 0.01 sigmoid activations are all near 0.5, std 1 near 0 and 1
    small = hist[(hist["weights"] == "std 0.01") & (hist["activation"] == "sigmoid")]
    assert small.loc[small["count"] > 0, "left"].between(0.4, 0.6).all()


def test_smooth_is_a_centred_moving_average():
    values = np.arange(10.0)
    out = common.smooth(values, window=3)
    np.testing.assert_allclose(out, [0.5, 1, 2, 3, 4, 5, 6, 7, 8, 8.5])


def test_deviation_names_the_step_and_framework():
    frame = pd.DataFrame({"framework": ["numpy"] * 3 + ["torch"] * 3, "k": ["a"] * 6,
                          "step": [1, 2, 3] * 2, "v": [2.0, 4.0, 1.0, 2.0, 3.0, 1.0]})
    exp = common.Experiment("t", "t", "", "", {}, {}, run=None, report=None,
                            curve_keys=("k",), values=("v",))
    [row] = common.deviations(frame, exp)
    assert row == {"k": "a", "value": "v", "base": "numpy", "scale": 4.0, "deviation": 0.25,
                   "framework": "torch", "at": 2}
    # no value in both (epoch 0's loss) agrees; a value missing in one framework is infinitely far
    frame.loc[[0, 3], "v"] = np.nan
    frame.loc[1, "v"] = frame.loc[4, "v"] = 3.0
    assert common.deviations(frame, exp)[0]["deviation"] == 0.0
    frame.loc[5, "v"] = np.nan
    assert common.deviations(frame, exp)[0]["deviation"] == np.inf


def test_the_run_directory(tmp_path):
    """Two frameworks in this process (the subprocess path is tested below; TensorFlow's curves
    above), every file, atomically written (no temporary files left), results.json with the CPU."""
    frameworks = ["numpy", "torch"]
    for framework in frameworks:
        load_or_skip(framework)
    out = tmp_path / "run"
    results = run_experiment("overfitting", out, frameworks=frameworks, in_process=True,
                             overrides=TINY["overfitting"])
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert names == ["plots", "plots/overfitting.png", "report.html", "report.md",
                     "results.csv", "results.json"]
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == COLUMNS["overfitting"] and len(rows) == 2 * _count("overfitting")
    saved = json.loads((out / "results.json").read_text())
    assert saved["environment"]["cpu"] and saved["config"]["size"] == "custom"
    assert {r["status"] for r in saved["runs"].values()} == {"ok"}
    assert saved["largest_deviation"]["deviation"] < 1e-9
    report = (out / "report.md").read_text()
    assert "How far apart the frameworks are" in report and "plots/overfitting.png" in report
    assert results["deviations"] == saved["deviations"]


def test_the_command_runs_each_framework_in_its_own_process(tmp_path, capsys):
    out = tmp_path / "paths"
    assert main(["experiment", "optimizer_paths", "--frameworks", "numpy",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "numpy:" in printed and "largest deviation from reference" in printed
    with open(out / "results.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == COLUMNS["optimizer_paths"]
        assert sum(1 for _ in reader) == 2 * len(R.PATHS) * (R.STEPS + 1)  # reference, numpy
    saved = json.loads((out / "results.json").read_text())
    assert saved["runs"]["numpy"]["status"] == "ok" and saved["runs"]["numpy"]["wall_seconds"] > 0
    assert saved["largest_deviation"]["deviation"] < 1e-12
    assert saved["command"] == ("python -m reports experiment optimizer_paths --frameworks "
                                f"numpy --seed 0 --dtype float64 --threads 1 --out {out}")
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files


def test_list_names_every_experiment(capsys):
    assert main(["experiment", "--list"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[0] for line in printed.splitlines()] == list(NAMES)


@pytest.mark.parametrize("argv, expected", [
    (["experiment", "nope"], "NAME: got 'nope', expected one of optimizer_paths, "
                             "optimizer_comparison, weight_init, batchnorm, overfitting"),
    (["experiment"], "NAME: got nothing, expected one of optimizer_paths"),
])
def test_a_bad_name_is_refused_with_the_choices(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_out_must_be_new_or_empty(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    assert main(["experiment", "optimizer_paths", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "not empty" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]  # nothing written


@pytest.mark.parametrize("kwargs, message", [
    (dict(frameworks=["jax"]), "frameworks: got ['jax'], expected some of numpy, torch"),
    (dict(seed=-1), "seed: got -1, expected an integer >= 0"),
    (dict(threads=0), "threads: got 0, expected an integer >= 1"),
    (dict(dtype="float16"), "dtype: got 'float16', expected 'float32' or 'float64'"),
])
def test_run_experiment_checks_its_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as info:
        run_experiment("optimizer_paths", tmp_path / "out", **kwargs)
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()  # refused before anything ran or was written


def test_overrides_are_checked_by_name():
    with pytest.raises(ValueError, match=r"overrides: got \['epoch'\], expected settings of"):
        make_config("overfitting", overrides={"epoch": 3})
    with pytest.raises(ValueError, match=r"overrides\['variants'\]: got \['dropot'\], expected "
                                         "a non-empty list of some of plain, weight decay"):
        make_config("overfitting", overrides={"variants": ["dropot"]})
    with pytest.raises(ValueError, match="name: got 'nope', expected one of optimizer_paths"):
        get("nope")
