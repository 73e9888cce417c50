"""Side-by-side code pages: the reference and the three backends, op by op and file by file.

The sources are read as text and cut with ``ast``; nothing here imports a backend, so the pages
render without PyTorch or TensorFlow installed (and without paying their import time). The pages
are written by templates/codepage.html.j2 in the report's layout and stylesheet.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from .render.doc import HTML

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


def _highlighted(snippet: Snippet) -> Markup:
    # Pygments escapes the source it highlights: its HTML goes into the template as markup.
    formatter = HtmlFormatter(linenos="inline", linenostart=snippet.start, cssclass="highlight")
    return Markup(highlight(snippet.text, PythonLexer(), formatter))


def _column(title: str, body: Cell | None, shared: list[tuple[str, int]] = ()) -> dict:
    """One column of a row, for templates/codepage.html.j2."""
    if body is None:
        return {"title": title, "kind": "note", "text": "—", "shared": shared}
    if isinstance(body, Doc):
        return {"title": title, "kind": "doc", "text": body.text, "shared": shared}
    if isinstance(body, str):
        return {"title": title, "kind": "note", "text": body, "shared": shared}
    snippets = body if isinstance(body, list) else [body]
    return {"title": title, "kind": "code", "html": [_highlighted(s) for s in snippets],
            "shared": shared}


def _page(title: str, rows: list[tuple[str | None, list[dict]]] = (), index: dict | None = None
          ) -> str:
    css = Markup(HtmlFormatter(cssclass="highlight").get_style_defs(".highlight"))
    return HTML.get_template("codepage.html.j2").render(title=title, rows=rows, index=index,
                                                        pygments_css=css)


def op_page(op: str, root: Path = ROOT) -> str:
    columns = [_column(source["path"], source["missing"] or source["snippets"],
                       source.get("shared") or [])
               for source in op_sources(op, root).values()]
    return _page(f"{op}: reference and backends side by side", [(None, columns)])


def file_page(name: str, root: Path = ROOT) -> str:
    titles = {"reference": REFERENCE_FOR_FILE.get(name, ("reference/",))[0],
              **{b: f"impls/{b}/{name}.py" for b in BACKENDS}}
    rows = [(row, [_column(titles[c], cells.get(c)) for c in COLUMNS])
            for row, cells in file_rows(name, root)]
    return _page(f"{name}.py: the three backends side by side", rows)


def op_filename(op: str) -> str:
    return f"op-{op}.html"


def file_filename(name: str) -> str:
    return f"file-{name}.html"


def index_page() -> str:
    return _page("cnn-rosetta: code side by side", index={
        "ops": [(op, op_filename(op)) for op in OPS],
        "files": [(f"{f}.py", file_filename(f)) for f in FILES]})


def pages(root: Path = ROOT) -> dict[str, str]:
    """Every code page as ``{file name: HTML}``, the index included."""
    _read.cache_clear()  # the sources as they are now, not as a previous rendering saw them
    out = {"index.html": index_page()}
    out.update({op_filename(op): op_page(op, root) for op in OPS})
    out.update({file_filename(f): file_page(f, root) for f in FILES})
    return out
