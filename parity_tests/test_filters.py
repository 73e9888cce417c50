"""The first-layer filters of the report (reports/filters.py and its section).

The pictures are checked by their pixels (cs231n's per-filter scaling, the grid, RGB for three
channels), the section on test_render's hand-made run directory with weights written here (a
known difference between two frameworks), and once on a real tiny run of the runner.
"""

from __future__ import annotations

import html as html_module
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pandas", reason="the report needs pandas: pip install 'cnn-rosetta[report]'")
pytest.importorskip("matplotlib", reason="the report needs matplotlib (the 'report' extra)")
pytest.importorskip("jinja2", reason="the report's templates need jinja2 (the 'report' extra)")

import impls  # noqa: E402
from parity_tests.test_render import make_run  # noqa: E402
from reference import models  # noqa: E402
from reports import filters  # noqa: E402
from reports.io import save_npz_atomic  # noqa: E402
from reports.render import render  # noqa: E402

DIGITS = ((1, 8, 8), 10)  # the shape test_render's "digits" cells stand for
OTHER = next((fw for fw in ("torch", "tensorflow") if impls.is_available(fw)), None)


# ---------------------------------------------------------------------------------------------
# the pictures


def test_each_filter_is_scaled_on_its_own():
    w = np.array([[[[1.0, 3.0], [2.0, 5.0]]],  # low 1, high 5
                  [[[-4.0, -4.0], [0.0, 4.0]]]])  # low -4, high 4
    np.testing.assert_allclose(filters.normalised(w)[:, 0],
                               [[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.5, 1.0]]])


def test_a_constant_filter_is_mid_grey():
    np.testing.assert_array_equal(filters.normalised(np.full((1, 1, 2, 2), 7.0)), 0.5)


def test_one_channel_filters_make_a_square_grey_grid_with_a_white_border():
    w = np.arange(5 * 1 * 2 * 3, dtype=np.float64).reshape(5, 1, 2, 3)
    grid = filters.filter_grid(w)
    # 5 filters: 3 columns, 2 rows of (2 + 1) x (3 + 1) tiles, plus the outer border
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1)
    assert np.all(grid[0] == 1.0) and np.all(grid[:, 0] == 1.0)  # the border
    np.testing.assert_allclose(grid[1:3, 1:4], [[0, 0.2, 0.4], [0.6, 0.8, 1.0]])  # filter 0
    np.testing.assert_array_equal(grid[4:6, 9:12], 1.0)  # the sixth cell stays empty


def test_three_channel_filters_are_rgb_tiles():
    w = np.zeros((2, 3, 1, 1))
    w[0, 0] = 1.0  # the first filter is all red, its other channels 0
    w[1, 2] = 1.0  # the second all blue
    grid = filters.filter_grid(w)
    assert grid.shape == (1 * 2 + 1, 2 * 2 + 1, 3)
    np.testing.assert_array_equal(grid[1, 1], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(grid[1, 3], [0.0, 0.0, 1.0])


def test_other_channel_counts_give_a_grey_tile_per_channel():
    w = np.arange(3 * 2 * 1 * 1, dtype=np.float64).reshape(3, 2, 1, 1)  # (0, 1), (2, 3), ...
    grid = filters.filter_grid(w)
    assert grid.shape == (3 * 2 + 1, 2 * 2 + 1)  # a row per filter, a column per channel
    np.testing.assert_array_equal(grid[1::2, 1::2], [[0.0, 1.0]] * 3)


@pytest.mark.parametrize("w, error, text", [
    (np.zeros((2, 3)), ValueError, r"w: got shape \(2, 3\), expected a non-empty"),
    (np.zeros((0, 1, 3, 3)), ValueError, r"w: got shape \(0, 1, 3, 3\)"),
    (np.array([[[[np.nan]]]]), ValueError, "w: got 1 non-finite weights, expected finite"),
    ([[[[1.0]]]], TypeError, "w: got list, expected a NumPy array"),
    (np.zeros((1, 1, 1, 1), bool), TypeError, "w: got dtype bool, expected a real dtype"),
])
def test_bad_filters_are_refused_with_the_argument_named(w, error, text):
    with pytest.raises(error, match=text):
        filters.filter_grid(w)


def test_the_same_filters_give_the_same_png_bytes():
    w = np.random.default_rng(0).standard_normal((6, 1, 3, 3))
    a = filters.grid_png(filters.filter_grid(w), "numpy, trained")
    assert a.startswith(b"\x89PNG") and a == filters.grid_png(filters.filter_grid(w.copy()),
                                                              "numpy, trained")


@pytest.mark.parametrize("model, shape", [("simple_cnn", (1, 28, 28)),
                                          ("three_layer_cnn", (3, 32, 32)),
                                          ("signs_cnn", (3, 64, 64))])
@pytest.mark.parametrize("known", [True, False], ids=["shape-recorded", "shape-unknown"])
def test_initial_filters_are_the_backends_starting_weights(model, shape, known):
    """Drawn again from the seed they equal the NumPy backend's first conv, whether or not the
    run recorded the dataset's shape (the first conv is the first array drawn)."""
    net = impls.load("numpy").build_model(model, input_shape=shape, num_classes=6, seed=3,
                                          dtype="float32")
    start = net.get_weights()
    name = filters.first_conv(start)
    spec = {"kind": "train", "model": model, "seed": 3, "dtype": "float32", "init": None}
    got = filters.initial_filters(spec, name, start[name].shape,
                                  shape if known else None, 6 if known else None)
    np.testing.assert_array_equal(got, start[name])


# ---------------------------------------------------------------------------------------------
# the section, on a hand-made run directory

DELTA = 3e-7  # torch's trained filters differ from NumPy's by this, at one weight


def _canonical(model: str, seed: int) -> dict[str, np.ndarray]:
    spec = models.resolve(model, *DIGITS)
    return models.initial_weights(spec, seed, "float32")


@pytest.fixture(scope="module")
def filter_run(tmp_path_factory) -> tuple[Path, dict, dict[str, np.ndarray]]:
    """test_render's run with weights: numpy and torch trained simple_cnn and mlp (torch's mlp
    seed 1 failed, TensorFlow skipped); the trained filters are the initial ones moved by 0.01
    per step of a ramp, torch's off by DELTA at one weight."""
    run = make_run(tmp_path_factory.mktemp("filters"))
    results = json.loads((run / "results.json").read_text())
    trained = {}
    for cell in results["cells"]:
        spec = cell["spec"]
        if spec["kind"] != "train" or cell["status"] != "ok":
            continue
        weights = _canonical(spec["model"], spec["seed"])
        if "conv1.weight" in weights:
            w = weights["conv1.weight"]
            w += (0.01 * np.arange(w.size).reshape(w.shape) / w.size).astype(np.float32)
            if spec["framework"] == "torch":
                w[0, 0, 0, 0] += np.float32(DELTA)
            trained[cell["cell_id"]] = w.copy()
        save_npz_atomic(run / "weights" / f"{cell['cell_id']}.npz", weights)
    written = render(run)
    return run, written, trained


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_the_section_shows_one_picture_per_framework_and_the_initial_one(filter_run):
    run, written, _ = filter_run
    html = (run / "report.html").read_text()
    section = _section(html, '<section class="filters">', "</section>")
    assert '<h3>simple_cnn</h3>' in section
    row = _section(section, '<div class="filter-row">', "</div>")
    alts = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)"', row)
    assert [html_module.unescape(a) for a in alts] == [
        "simple_cnn: initial filters", "simple_cnn: numpy's trained filters",
        "simple_cnn: torch's trained filters"]
    for name in ("initial", "numpy", "torch"):
        png = run / "plots" / f"filters-simple_cnn-{name}.png"
        assert written[f"plots/{png.name}"] == png and png.read_bytes().startswith(b"\x89PNG")
    assert "tensorflow: its cell skipped." in section
    assert 'href="#first-layer-filters"' in html  # listed in the table of contents


def test_the_deviation_line_states_the_real_largest_difference(filter_run):
    run, _, trained = filter_run
    numpy_w = trained["train-numpy-simple_cnn-digits-seed0"].astype(np.float64)
    torch_w = trained["train-torch-simple_cnn-digits-seed0"].astype(np.float64)
    value = float(np.max(np.abs(numpy_w - torch_w)))  # DELTA after float32 rounding
    assert value == pytest.approx(DELTA, rel=0.2)
    scale = max(np.max(np.abs(numpy_w)), np.max(np.abs(torch_w)))
    md = (run / "report.md").read_text()
    line = next(x for x in md.splitlines()
                if x.startswith("Largest difference between two frameworks"))
    assert (f": {value:.2g} (numpy against torch), {value / scale:.2g} of their largest "
            f"\\|weight\\| {scale:.2g}; the pictures are identical to the grey level.") in line
    # training moved every framework's filters by up to 0.01 (the ramp's last step)
    assert "Training moved the filters by up to 0.01 from the initial ones." in line


def test_a_model_without_a_conv_has_no_pictures(filter_run):
    run, written, _ = filter_run
    md = (run / "report.md").read_text()
    section = _section(md, "## First-layer filters", "\n## ")
    assert "### simple_cnn" in section and "mlp" not in section
    assert not [p for p in written if p.startswith("plots/filters-mlp")]


def _markdown(run: Path) -> str:
    """The filters section alone, as report.md writes it (no whole render: it is slow)."""
    from reports.render.doc import to_markdown

    results = json.loads((run / "results.json").read_text())
    sets = filters.filter_sets(run, results, None)
    section = filters.filters_section(sets, filters.images(sets))
    return "" if section is None else to_markdown([section], "t")


def test_no_weights_mean_no_section(tmp_path):
    run = make_run(tmp_path / "run")  # no weights directory at all
    assert _markdown(run) == ""


def test_unreadable_and_non_finite_weights_are_said_not_drawn(tmp_path):
    run = make_run(tmp_path / "run")
    ok = _canonical("simple_cnn", 0)
    save_npz_atomic(run / "weights" / "train-numpy-simple_cnn-digits-seed0.npz", ok)
    bad = {**ok, "conv1.weight": np.full_like(ok["conv1.weight"], np.nan)}
    save_npz_atomic(run / "weights" / "train-torch-simple_cnn-digits-seed0.npz", bad)
    (run / "weights" / "train-numpy-mlp-digits-seed0.npz").write_bytes(b"not a zip")
    section = _markdown(run)
    assert ("Only numpy has trained `conv1.weight` here: nothing to compare. torch: "
            "non-finite trained weights, no picture. tensorflow: its cell skipped.") in section
    assert "filters-simple_cnn-torch" not in section and "filters-simple_cnn-numpy" in section
    assert "### mlp" not in section  # its unreadable file has no conv to draw either


def test_a_cell_id_that_is_a_path_is_never_read(tmp_path):
    """results.json is data: a cell id like '../x' names no file the report opens."""
    run = make_run(tmp_path / "run")
    results = json.loads((run / "results.json").read_text())
    ok = _canonical("simple_cnn", 0)
    save_npz_atomic(run / "weights" / "train-numpy-simple_cnn-digits-seed0.npz", ok)
    save_npz_atomic(tmp_path / "outside.npz", ok)  # what ../../outside would reach
    for cell in results["cells"]:
        if cell["cell_id"] == "train-torch-simple_cnn-digits-seed0":
            cell["cell_id"] = "../../outside"
    (run / "results.json").write_text(json.dumps(results))
    section = _markdown(run)
    assert "Only numpy has trained `conv1.weight` here" in section
    assert "torch: its cell id is not a file name." in section


# ---------------------------------------------------------------------------------------------
# a real run


@pytest.mark.skipif(OTHER is None, reason="needs torch or tensorflow for a second framework")
def test_a_real_run_draws_the_same_filters_in_two_frameworks(tmp_path):
    from reports.__main__ import main

    assert main(["run", "--frameworks", f"numpy,{OTHER}", "--models", "simple_cnn",
                 "--out", str(tmp_path), "--run-id", "f", "--dataset", "synthetic",
                 "--dataset-option", "n_train=32", "--dataset-option", "n_test=16",
                 "--dataset-option", "input_shape=[1,8,8]", "--epochs", "1",
                 "--batch-size", "16", "--no-ops", "--no-progress", "--no-render"]) == 0
    run = tmp_path / "f"
    results = json.loads((run / "results.json").read_text())
    sets = filters.filter_sets(run, results, json.loads((run / "environment.json").read_text()))
    assert [(fs.model, list(fs.trained)) for fs in sets] == [("simple_cnn", ["numpy", OTHER])]
    fs = sets[0]
    start = impls.load("numpy").build_model("simple_cnn", input_shape=(1, 8, 8),
                                            num_classes=10, seed=0,
                                            init=results["config"]["init"]).get_weights()
    np.testing.assert_array_equal(fs.initial, start["conv1.weight"])
    dev = filters.deviation(fs)
    assert dev.value < 1e-4 * dev.scale and dev.moved > 100 * dev.value
    line = "".join(getattr(x, "text", x) for x in filters.deviation_text(fs))
    assert line.startswith("Largest difference between two frameworks' trained conv1.weight: "
                           f"{dev.value:.2g} (numpy against {OTHER}), ")
