"""Side-by-side code pages: the reference and the three backends, op by op and file by file.

The sources are read as text and cut with ``ast``; nothing here imports a backend, so the pages
render without PyTorch or TensorFlow installed (and without paying their import time).
"""

from __future__ import annotations

import ast
import functools
import html
from dataclasses import dataclass, field
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

ROOT = Path(__file__).resolve().parents[1]  # the project: reference/, impls/

OPS = ("conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "sigmoid", "tanh", "flatten",
       "softmax", "softmax_cross_entropy", "mse", "batchnorm", "dropout",
       "local_response_norm", "l2_regularization")
FILES = ("layers", "models", "optimizers", "train", "init")
BACKENDS = ("numpy", "torch", "tensorflow")
COLUMNS = ("reference",) + BACKENDS

# What reference/ holds for each backend file: names in reference/models.py, or why nothing.
REFERENCE_FOR_FILE: dict[str, tuple[str, tuple[str, ...] | str]] = {
    "layers": ("reference/models.py", ("Layer",)),
    "models": ("reference/models.py", ("ModelSpec", "resolve", "initial_weights",
                                       "dropout_masks")),
    "optimizers": ("reference/models.py", "The reference has no optimizers: the textbook "
                   "updates every backend implements are written out in docs/models.md."),
    "train": ("reference/models.py", "The reference has no training loop: training parity "
              "compares each backend's steps with the NumPy backend's."),
    "init": ("reference/models.py", ("fans", "draw")),
}

# A helper that this many ops or more use is the backend's shared machinery (its NumPy <-> framework
# edge): it is named under each op, not repeated in full on every page.
_SHARED_BY = 3

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em 1.5em; color: #222; }
a { color: #0550ae; }
.grid { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 0.6em;
        margin-bottom: 1.5em; }
.col { border: 1px solid #ccd; border-radius: 4px; min-width: 0; background: #fbfbfd; }
.col h3 { margin: 0; padding: 0.3em 0.5em; font-size: 0.9em; background: #e8ecf4;
          border-bottom: 1px solid #ccd; font-family: ui-monospace, monospace; }
.col .highlight { font-size: 0.72em; }
/* Wrapped, not scrolled: four columns of 100-character lines never fit side by side. */
.col .highlight pre, .col pre.doc { margin: 0; padding: 0.4em; white-space: pre-wrap;
                                    overflow-wrap: anywhere; }
.col pre.doc { font-size: 0.78em; color: #333; }
.col .note { padding: 0.5em; font-size: 0.85em; color: #555; }
.linenos { color: #999; }
h2 { font-size: 1.1em; margin-top: 1.2em; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.6em; text-align: left; }
"""


@dataclass(frozen=True)
class Snippet:
    """One top-level definition cut from a source file."""

    name: str
    path: str  # relative to the project
    start: int  # first line (its first decorator), 1-based
    text: str


@dataclass(frozen=True)
class Doc:
    """A module docstring, shown as preformatted text."""

    text: str


Cell = list[Snippet] | Snippet | Doc | str  # what one column of a row shows


@dataclass
class Module:
    """A source file read as text: its top-level defs and which module-level names each uses."""

    path: str
    lines: list[str]
    defs: dict[str, ast.AST]
    docstring: str | None
    _uses: dict[str, set[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, path: str, root: Path = ROOT) -> Module | None:
        return _read(cls, path, root)

    @classmethod
    def parse(cls, path: str, root: Path) -> Module | None:
        file = root / path
        if not file.is_file():
            return None
        text = file.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(file))
        defs = {node.name: node for node in tree.body
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        return cls(path, text.splitlines(), defs, ast.get_docstring(tree))

    def snippet(self, name: str) -> Snippet:
        node = self.defs[name]
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return Snippet(name, self.path, start, "\n".join(self.lines[start - 1:node.end_lineno]))

    def uses(self, name: str) -> set[str]:
        """The module-level defs that def ``name`` refers to (bases and decorators included)."""
        if name not in self._uses:
            self._uses[name] = {n.id for n in ast.walk(self.defs[name])
                                if isinstance(n, ast.Name) and n.id in self.defs and n.id != name}
        return self._uses[name]

    def closure(self, names: list[str]) -> set[str]:
        """Every module-level def that ``names`` reach, directly or through other defs."""
        seen: set[str] = set()
        todo = [n for n in names if n in self.defs]
        while todo:
            for used in self.uses(todo.pop()) - seen:
                seen.add(used)
                todo.append(used)
        return seen - set(names)

    def order(self, names: set[str]) -> list[str]:
        return sorted(names, key=lambda n: self.defs[n].lineno)


@functools.lru_cache(maxsize=32)
def _read(cls: type[Module], path: str, root: Path) -> Module | None:
    # Each page reads the same four ops.py files: parse each once per rendering.
    return cls.parse(path, root)


def op_functions(module: Module, op: str) -> list[str]:
    """``<op>_forward`` and ``<op>_backward``, or the single function ``<op>`` (the losses)."""
    pair = [f"{op}_forward", f"{op}_backward"]
    found = [name for name in pair if name in module.defs]
    return found or ([op] if op in module.defs else [])


def op_sources(op: str, root: Path = ROOT) -> dict[str, dict]:
    """For each column: the op's functions, its own helpers, and the shared helpers it uses."""
    out = {}
    for column in COLUMNS:
        path = "reference/ops.py" if column == "reference" else f"impls/{column}/ops.py"
        module = Module.read(path, root)
        if module is None:
            out[column] = {"path": path, "missing": f"{path} not found", "snippets": []}
            continue
        functions = op_functions(module, op)
        helpers = module.closure(functions)
        reach = [module.closure(op_functions(module, o)) for o in OPS]
        users = {h: sum(h in r for r in reach) for h in helpers}
        own = [h for h in module.order(helpers) if users[h] < _SHARED_BY]
        shared = [h for h in module.order(helpers) if users[h] >= _SHARED_BY]
        out[column] = {
            "path": path,
            "missing": None if functions else f"no {op}_forward/{op}_backward or {op} in {path}",
            "snippets": [module.snippet(n) for n in functions + own],
            "shared": [(n, module.snippet(n).start) for n in shared],
        }
    return out


def file_rows(name: str, root: Path = ROOT) -> list[tuple[str, dict[str, Cell]]]:
    """Rows of a file page: the file heads, then one row per top-level def, aligned by name."""
    modules = {b: Module.read(f"impls/{b}/{name}.py", root) for b in BACKENDS}
    ref_path, ref_what = REFERENCE_FOR_FILE.get(name, ("", "no counterpart in reference/"))
    ref_module = Module.read(ref_path, root) if ref_path else None

    head: dict[str, Cell] = {}
    for backend, module in modules.items():
        head[backend] = Doc(module.docstring or "(no module docstring)") if module else \
            f"impls/{backend}/{name}.py not found"
    if isinstance(ref_what, str) or ref_module is None:
        head["reference"] = ref_what if isinstance(ref_what, str) else f"{ref_path} not found"
    else:
        head["reference"] = [ref_module.snippet(n) for n in ref_what if n in ref_module.defs]
    rows: list[tuple[str, dict[str, Cell]]] = [("the file (reference: what it builds on)", head)]

    names: list[str] = []
    for module in modules.values():
        if module is not None:
            names += [n for n in module.defs if n not in names]
    for n in names:
        rows.append((n, {b: m.snippet(n) for b, m in modules.items()
                         if m is not None and n in m.defs}))
    return rows


# ---------------------------------------------------------------------------------------------
# HTML


def _highlighted(snippet: Snippet) -> str:
    formatter = HtmlFormatter(linenos="inline", linenostart=snippet.start, cssclass="highlight")
    return highlight(snippet.text, PythonLexer(), formatter)


def _cell(title: str, body: Cell | None, extra: str = "") -> str:
    if body is None:
        content = '<div class="note">&mdash;</div>'
    elif isinstance(body, Doc):
        content = f'<pre class="doc">{html.escape(body.text)}</pre>'
    elif isinstance(body, str):
        content = f'<div class="note">{html.escape(body)}</div>'
    else:
        snippets = body if isinstance(body, list) else [body]
        content = "".join(_highlighted(s) for s in snippets)
    return f'<div class="col"><h3>{html.escape(title)}</h3>{content}{extra}</div>'


def _page(title: str, body: str) -> str:
    css = _STYLE + HtmlFormatter(cssclass="highlight").get_style_defs(".highlight")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>\n<style>{css}</style></head>\n<body>\n"
            f'<p><a href="index.html">all code pages</a> &middot; '
            f'<a href="../report.html">the report</a></p>\n'
            f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def op_page(op: str, root: Path = ROOT) -> str:
    cells = []
    for source in op_sources(op, root).values():
        shared = source.get("shared") or []
        extra = ""
        if shared:
            names = ", ".join(f"<code>{html.escape(n)}</code> (line {line})" for n, line in shared)
            extra = f'<div class="note">also uses the shared helpers {names}</div>'
        cells.append(_cell(source["path"], source["missing"] or source["snippets"], extra))
    return _page(f"{op}: reference and backends side by side",
                 f'<div class="grid">{"".join(cells)}</div>')


def file_page(name: str, root: Path = ROOT) -> str:
    titles = {"reference": REFERENCE_FOR_FILE.get(name, ("reference/",))[0],
              **{b: f"impls/{b}/{name}.py" for b in BACKENDS}}
    body = []
    for row, cells in file_rows(name, root):
        grid = "".join(_cell(titles[c], cells.get(c)) for c in COLUMNS)
        body.append(f'<h2>{html.escape(row)}</h2>\n<div class="grid">{grid}</div>')
    return _page(f"{name}.py: the three backends side by side", "\n".join(body))


def op_filename(op: str) -> str:
    return f"op-{op}.html"


def file_filename(name: str) -> str:
    return f"file-{name}.html"


def index_page() -> str:
    ops = "".join(f'<li><a href="{op_filename(op)}">{op}</a></li>' for op in OPS)
    files = "".join(f'<li><a href="{file_filename(f)}">{f}.py</a></li>' for f in FILES)
    body = ("<p>Each page puts the slow reference (<code>reference/</code>) and the NumPy, "
            "PyTorch and TensorFlow backends (<code>impls/</code>) next to each other. The source "
            "is the project's as it was when the report was rendered; line numbers are the "
            "files' own.</p>\n"
            f"<h2>ops (forward and backward)</h2><ul>{ops}</ul>\n"
            f"<h2>layers, models, optimizers, training</h2><ul>{files}</ul>")
    page = _page("cnn-rosetta: code side by side", body)
    return page.replace('<a href="index.html">all code pages</a> &middot; ', "")


def pages(root: Path = ROOT) -> dict[str, str]:
    """Every code page as ``{file name: HTML}``, the index included."""
    _read.cache_clear()  # the sources as they are now, not as a previous rendering saw them
    out = {"index.html": index_page()}
    out.update({op_filename(op): op_page(op, root) for op in OPS})
    out.update({file_filename(f): file_page(f, root) for f in FILES})
    return out
