"""Hostile text through every field that reaches the report: nothing executable comes out.

A shared results.json is input from whoever made it. Its run id, framework, model, dataset, op
and size names, cell ids, error texts, notes, configuration and environment values, the
baseline's names and the upstream-defects table are filled with HTML, ``javascript:`` links (as
Markdown links, images, autolinks and reference definitions), event-handler attributes and
Markdown control characters. The HTML report is parsed with ``html.parser``; the Markdown
report is turned into HTML by a CommonMark renderer that keeps raw HTML and accepts every link
(as a careless viewer would) and parsed the same way. Neither may hold a <script> element, an
on* attribute or a link whose scheme is not http(s), and the hostile text must still be shown.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("pandas", reason="the report needs pandas: pip install 'cnn-rosetta[report]'")
pytest.importorskip("matplotlib", reason="the report needs matplotlib (the 'report' extra)")
pytest.importorskip("pygments", reason="the code pages need pygments (the 'report' extra)")
pytest.importorskip("jinja2", reason="the report's templates need jinja2 (the 'report' extra)")

import reports.render as render_module  # noqa: E402
from parity_tests.test_render import make_run  # noqa: E402
from reports import io as report_io  # noqa: E402
from reports.render import render  # noqa: E402
from reports.render.doc import safe_href  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
HOSTILE = (
    SCRIPT,
    "[x](javascript:alert(1))",
    "![i](javascript:alert(2))",
    "<javascript:alert(3)>",
    '<img src=x onerror="alert(4)">',
    '<a href="javascript:alert(5)">a</a>',
    "[r]\n\n[r]: javascript:alert(6)",
    "`tick` **bold** _under_ | pipe | ~~strike~~ &lt;b&gt; \\",
    "\n# heading\n- item\n> quote\n```\nfence",
    "java\tscript:alert(7)",
    '"><svg onload=alert(8)>',
)
BAD = " ".join(HOSTILE)  # every trick in one value


def _bad(tag: str) -> str:
    return f"{tag} {BAD}"


def poison(run: Path) -> None:
    """Hostile text in every field of results.json, environment.json and baseline.json."""
    results = json.loads((run / "results.json").read_text())
    ids = {c["cell_id"]: _bad(c["cell_id"]) for c in results["cells"]}
    names = {"torch": _bad("torch"), "mlp": _bad("mlp"), "digits": _bad("digits"),
             "relu": _bad("relu")}
    results["run_id"] = "[x](javascript:alert(1))"
    results["created"] = _bad("created")
    results["config"][_bad("key")] = _bad("value")
    results["config"]["models"].append(_bad("model"))
    results["load"] = {"threads": 2, "start": 3.5, "max": "inf", "loaded": True}
    for cell in results["cells"]:
        cell["cell_id"] = ids[cell["cell_id"]]
        spec = cell["spec"]
        for key in ("framework", "model", "dataset"):
            if spec.get(key) in names:
                spec[key] = names[spec[key]]
        if cell["status"] == "failed":
            cell["error"] = _bad("error") + "\nRuntimeError: " + BAD
        cell["note"] = _bad("note")
        cell["loaded"] = True
    for row in results["rows"]:
        row["cell"] = ids.get(row["cell"], row["cell"])
        for key in ("framework", "model", "dataset", "op"):
            if row.get(key) in names:
                row[key] = names[row[key]]
        if row.get("size"):
            row["size"] = row["size"] + BAD
        row["unit"] = BAD
    report_io.write_json_atomic(run / "results.json", results)

    env = json.loads((run / "environment.json").read_text())
    env["cpu"] = _bad("cpu")
    env[_bad("env-key")] = {"nested": _bad("nested"), "list": [{"a": BAD}]}
    env["openblas_variables"] = {"OPENBLAS_CORETYPE": BAD}
    env["cells"] = {ids[c]: {"thread_settings": {"threads": BAD}, "blas": [{"internal_api": BAD}],
                             "torch_threads": BAD, "python": _bad("py")} for c in list(ids)[:3]}
    report_io.write_json_atomic(run / "environment.json", env)

    baseline = json.loads((run / "baseline.json").read_text())
    baseline["run_id"], baseline["source"] = _bad("baseline"), _bad("source")
    comparison = baseline["comparison"]
    for pair in comparison["regressions"]:
        pair.update(framework=_bad("fw"), metric=_bad("metric"))
    comparison["regressions"].append({"cell": _bad("cell"), "metric": "status",
                                      "current": BAD})
    comparison["missing"] = [{"framework": BAD, "model": BAD, "dataset": BAD, "seed": BAD}]
    comparison["thresholds"] = {"max_accuracy_drop": BAD, "max_slowdown": BAD}
    for row in baseline["rows"]:
        if row.get("framework") == "torch":
            row["framework"] = names["torch"]
    report_io.write_json_atomic(run / "baseline.json", baseline)


DEFECTS = [{"id": BAD, "framework": _bad("tensorflow"), "versions": {"tensorflow": BAD},
            "op": BAD, "geometry": {"N": BAD}, "reproducer": "x = 1 `` ``` " + BAD,
            "expected": BAD, "got": BAD, "workaround": BAD, "upstream": "javascript:alert(9)",
            "test": BAD},
           {"id": "ok", "framework": "torch", "versions": "2.13.0", "op": "conv2d",
            "geometry": "1x1", "reproducer": "f()", "expected": "0", "got": "1",
            "workaround": "none", "upstream": "https://github.com/pytorch/pytorch/issues/1",
            "test": "parity_tests/test_x.py::test_y"}]


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def assert_nothing_executable(page: str, allow_png: bool) -> Elements:
    parsed = Elements()
    parsed.feed(page)
    parsed.close()
    assert "script" not in {tag for tag, _ in parsed.tags}, "a <script> element from data"
    for tag, attrs in parsed.tags:
        for name, value in attrs:
            assert not name.lower().startswith("on"), (tag, name, value)
            if name.lower() in ("href", "src", "action", "formaction", "xlink:href"):
                value = value or ""
                if allow_png and tag == "img" and value.startswith("data:image/png;base64,"):
                    continue
                scheme = urlsplit(value.strip()).scheme.lower()
                assert scheme in ("", "http", "https"), (tag, name, value)
                assert "javascript" not in "".join(value.split()).lower(), (tag, name, value)
    return parsed


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    run = make_run(tmp_path_factory.mktemp("hostile"))
    poison(run)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render_module, "read_defects", lambda: DEFECTS)
        render(run)
    return run


def test_the_html_report_runs_nothing_from_the_data(hostile_run):
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    parsed = assert_nothing_executable(page, allow_png=True)
    text = "".join(parsed.text)
    assert SCRIPT in text  # shown as text, not dropped
    assert "[x](javascript:alert(1))" in text  # the run id, as written
    assert "Framework bugs this suite found" in text
    links = [dict(attrs).get("href") for tag, attrs in parsed.tags if tag == "a"]
    assert "https://github.com/pytorch/pytorch/issues/1" in links  # the http(s) upstream link
    assert "javascript:alert(9)" in text  # the other one, as text only
    assert "The machine was loaded during this run" in text


def test_the_markdown_report_runs_nothing_from_the_data(hostile_run):
    markdown_it = pytest.importorskip("markdown_it", reason="the check renders report.md with "
                                                            "markdown-it-py")
    md = (hostile_run / "report.md").read_text(encoding="utf-8")
    careless = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
    careless.validateLink = lambda url: True  # a viewer that follows any link
    page = careless.render(md)
    parsed = assert_nothing_executable(page, allow_png=False)
    text = "".join(parsed.text)
    assert SCRIPT in text
    assert "[x](javascript:alert(1))" in text
    # One paragraph per data value: no hostile newline opened a heading or a list.
    headings = [t for t, _ in parsed.tags if t in ("h1", "h2")]
    assert headings.count("h1") == 1


@pytest.mark.parametrize("href,expected", [
    ("code/index.html", "code/index.html"),
    ("#failed-and-skipped-cells", "#failed-and-skipped-cells"),
    ("https://github.com/a/b/issues/1", "https://github.com/a/b/issues/1"),
    ("http://example.org/x?y=1", "http://example.org/x?y=1"),
    ("javascript:alert(1)", None),
    ("JaVaScRiPt:alert(1)", None),
    ("java\tscript:alert(1)", None),
    (" javascript:alert(1)", None),
    ("\x00javascript:alert(1)", None),
    ("vbscript:msgbox(1)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    ("file:///etc/passwd", None),
    ("//evil.example/x", None),
    ("/etc/passwd", None),
    ("http:no-host", None),
    (None, None),
    (3, None),
], ids=lambda v: repr(v))
def test_links_keep_only_http_relative_and_fragment_targets(href, expected):
    assert safe_href(href) == expected
