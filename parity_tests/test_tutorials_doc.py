"""docs/tutorials.md: every link resolves, and every function and class of the tutorials is there.

A link to a .py file must name (as its code text) a top-level definition of that file, a
method as ``Class.method``, or the file's own path; a link into the report's code pages
(reports/out/latest/code/) must name a page reports/codepages.py writes and, after ``#``, a
definition that page has a row for; any other link must be a file of the project. The
tutorials' names are listed here (the texts live outside the repository, in ../shared/seeds/).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "tutorials.md"
CODE_PAGES = "reports/out/latest/code/"
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")

# Every function and class each tutorial defines (def/class lines of its code), and the
# helpers it calls without defining them; methods named only "forward"/"backward"/"__init__"
# are covered by their layer's row.
TUTORIAL_NAMES = {
    "000": ["zero_pad", "get_corners", "convolve", "softmax", "softmaxloss",
            "create_mask_from_window", "grad_check", "Adam", "initialize_adam",
            "update_parameters", "minimize", "make_model", "load_data", "get_minibatches",
            "grads_to_vector", "params_to_vector", "vector_to_param", "compare", "accuracy"],
    "001": ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
            "max_pool_backward_naive", "conv_relu_forward", "conv_relu_backward",
            "conv_relu_pool_forward", "conv_relu_pool_backward", "ThreeLayerConvNet",
            "spatial_batchnorm_forward", "spatial_batchnorm_backward", "Solver", "rel_error",
            "eval_numerical_gradient", "eval_numerical_gradient_array", "visualize_grid",
            "imshow_noax"],
    "002": ["load_mnist", "_download", "download_mnist", "init_mnist", "_load_img",
            "_load_label", "_convert_numpy", "_change_one_hot_label", "img_show", "AND", "NAND",
            "OR", "Not", "step_func", "Sigmoid", "Relu", "softmax", "get_data", "init_network",
            "predict", "mean_squared_error", "cross_entropy_error", "numerical_gradient_1d",
            "numerical_gradient", "function", "gradient_descent", "TwoLayerNet", "BaseLayer",
            "Mullayer", "AddLayer", "Affine", "SoftmaxWithLoss", "SGD", "Momentum", "AdaGrad",
            "RMSprop", "Adam", "MultiLayerNet", "__init_weight", "weight_decay_lambda",
            "Dropout", "BatchNormalization", "im2col", "col2im", "Convolution", "Pooling",
            "SimpleConvNet"],
    "003": ["zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
            "create_mask_from_window", "distribute_value", "pool_backward", "load_cifar10",
            "Dataset", "conv2d", "max_pool", "fully_connect", "build_model", "loss", "accuracy",
            "train"],
    "004": ["zeros_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
            "create_mask_from_window", "distribute_value", "pool_backward", "load_dataset",
            "convert_to_one_hot", "random_mini_batches", "create_placeholders",
            "initialize_parameters", "forward_propagation", "compute_cost", "model"],
}


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _links() -> list[tuple[str, str]]:
    return LINK.findall(_doc())


@functools.cache
def _definitions(path: Path) -> frozenset[str]:
    """Top-level functions, classes and assigned names of a file, and Class.method names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{item.name}" for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return frozenset(names)


def _target(href: str) -> tuple[str, str | None]:
    """(path relative to the project, fragment) of a link in docs/."""
    path, _, fragment = href.partition("#")
    resolved = (DOC.parent / path).resolve()
    return resolved.relative_to(ROOT).as_posix(), fragment or None


def _source_links() -> list[tuple[str, str]]:
    return [(text, href) for text, href in _links()
            if not href.startswith(("http://", "https://"))
            and not _target(href)[0].startswith(CODE_PAGES)]


def _page_links() -> list[tuple[str, str]]:
    return [(text, href) for text, href in _links() if _target(href)[0].startswith(CODE_PAGES)]


def test_the_doc_has_links_of_every_kind():
    assert len(_source_links()) > 200 and len(_page_links()) > 60


def test_every_link_to_the_project_is_a_real_file():
    missing = sorted({href for _, href in _source_links()
                      if not (ROOT / _target(href)[0]).is_file()})
    assert missing == []


def test_every_linked_name_is_defined_in_its_file():
    wrong = []
    for text, href in _source_links():
        path, fragment = _target(href)
        if not path.endswith(".py"):
            continue
        assert fragment is None, f"{href}: a .py link has no anchor; name the definition"
        if text == f"`{path}`":
            continue  # the file as a whole
        name = re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_.]*)`", text)
        assert name is not None, f"[{text}]({href}): the text of a .py link is `name`"
        if name.group(1) not in _definitions(ROOT / path):
            wrong.append(f"{path}::{name.group(1)}")
    assert wrong == []


def test_every_code_page_link_names_a_page_and_a_row_it_has():
    pytest.importorskip("pygments", reason="the code pages need pygments (the 'report' extra)")
    pytest.importorskip("jinja2", reason="the code pages need jinja2 (the 'report' extra)")
    from reports import codepages

    wrong = []
    for _, href in _page_links():
        path, fragment = _target(href)
        page = path[len(CODE_PAGES):]
        op = re.fullmatch(r"op-(\w+)\.html", page)
        file = re.fullmatch(r"file-(\w+)\.html", page)
        if op and op.group(1) in codepages.OPS and fragment is None:
            continue
        if file and file.group(1) in codepages.FILES:
            rows = {heading for heading, _ in codepages.file_rows(file.group(1))}
            if fragment is None or fragment in rows:
                continue
        wrong.append(href)
    assert wrong == []


def test_file_pages_anchor_each_definition_by_its_name():
    pytest.importorskip("pygments", reason="the code pages need pygments (the 'report' extra)")
    pytest.importorskip("jinja2", reason="the code pages need jinja2 (the 'report' extra)")
    from reports import codepages

    page = codepages.file_page("layers")
    assert '<h2 id="Conv2d">Conv2d</h2>' in page
    assert '<h2>the file (reference: what it builds on)</h2>' in page  # no id with spaces


@pytest.mark.parametrize("tutorial", sorted(TUTORIAL_NAMES))
def test_every_tutorial_name_has_a_row(tutorial):
    """Each name appears in the first column of its tutorial's table."""
    text = _doc()
    start = text.index(f"\n## {tutorial}:")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else len(text)]
    first_cells = " ".join(line.split("|")[1] for line in section.splitlines()
                           if line.startswith("| ") and not line.startswith("| ---"))
    missing = [name for name in TUTORIAL_NAMES[tutorial]
               if not re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])",
                                first_cells)]
    assert missing == []


def test_each_gradient_check_metric_is_named():
    text = _doc()
    section = text[text.index("## Gradient checks"):text.index("\n## 000")]
    for name in ("norm_ratio", "norm_ratio_passes", "NORM_RATIO_THRESHOLD", "cs231n_rel_error",
                 "mean_abs_difference"):
        assert f"[`{name}`](../reference/gradcheck.py)" in section
