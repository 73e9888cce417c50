"""What a report section is made of, and the two writers that turn sections into HTML and Markdown.

A section builder returns a ``Section``: a title and a list of blocks (paragraphs, bullet lists,
tables, figures, preformatted text, sub-headings). Text in a block is a list of spans: a plain
``str`` is text; ``code``, ``strong``, ``em`` and ``link`` mark the rest. Data never becomes
markup: the writers are Jinja2 templates (templates/), the HTML one with autoescape on, the
Markdown one escaping every value it prints (``md``), and a link keeps its target only when
``safe_href`` accepts it (http(s), relative or fragment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jinja2
import pandas as pd
from markupsafe import Markup

# ---------------------------------------------------------------------------------------------
# spans


@dataclass(frozen=True)
class Span:
    kind: str  # "text", "code", "strong", "em", "link"
    text: str
    href: str | None = None  # links only; None when the target was refused


def code(text: object) -> Span:
    return Span("code", str(text))


def strong(text: object) -> Span:
    return Span("strong", str(text))


def em(text: object) -> Span:
    return Span("em", str(text))


def link(text: object, href: object) -> Span:
    """A link to ``href`` if it is http(s), relative or a fragment; otherwise plain text."""
    return Span("link", str(text), safe_href(href))


def safe_href(href: object) -> str | None:
    """``href`` if it is an http(s) URL with a host, a relative path or a fragment, else None.

    Parsed by ``urllib.parse.urlsplit`` (which drops the tab, CR and LF that browsers ignore
    too, so ``java\\tscript:`` is seen as the ``javascript:`` it is) and put back together
    from the parts, so the browser gets exactly what was checked.
    """
    if not isinstance(href, str):
        return None
    try:
        parts = urlsplit(href.strip())
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.netloc:
        return urlunsplit(parts)
    if not parts.scheme and not parts.netloc and not href.strip().startswith(("/", "\\")):
        return urlunsplit(parts)
    return None


Text = list  # of str | Span


def spans(text: Any) -> list[Span]:
    items = text if isinstance(text, (list, tuple)) else [text]
    return [s if isinstance(s, Span) else Span("text", str(s)) for s in items]


# ---------------------------------------------------------------------------------------------
# blocks


@dataclass(frozen=True)
class Para:
    text: tuple[Span, ...]
    kind: str = "p"

    def __init__(self, *items: Any):
        object.__setattr__(self, "text", tuple(spans(list(items))))


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Span, ...], ...]
    kind: str = "ul"

    def __init__(self, items: Any):
        object.__setattr__(self, "items", tuple(tuple(spans(i)) for i in items))


@dataclass(frozen=True)
class Table:
    """A table: column titles and rows of cells (each a str, or a list of spans)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    kind: str = "table"

    def __init__(self, columns: Any, rows: Any):
        object.__setattr__(self, "columns", tuple(str(c) for c in columns))
        object.__setattr__(self, "rows", tuple(
            tuple(v if isinstance(v, (list, Span)) else str(v) for v in row) for row in rows))

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Table:
        return cls(frame.columns, frame.itertuples(index=False))

    def cells(self, row: tuple) -> list[list[Span]]:
        return [spans(v) for v in row]


@dataclass(frozen=True)
class Figure:
    name: str  # plots/<name>.png
    title: str
    caption: tuple[Span, ...]
    kind: str = "figure"

    def __init__(self, name: str, title: str, *caption: Any):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "caption", tuple(spans(list(caption))))


@dataclass(frozen=True)
class Pre:
    text: str
    kind: str = "pre"


@dataclass(frozen=True)
class Subheading:
    text: str
    kind: str = "h3"


@dataclass(frozen=True)
class Banner:
    """A warning shown in a box (HTML) or a quote (Markdown)."""

    text: tuple[Span, ...]
    kind: str = "banner"

    def __init__(self, *items: Any):
        object.__setattr__(self, "text", tuple(spans(list(items))))


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    nav: bool = True  # listed in the table of contents

    @property
    def id(self) -> str:
        # Titles are the report's own words, never data: a slug of them is a stable anchor.
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")

    def add(self, *blocks: Any) -> Section:
        self.blocks += [b for b in blocks if b is not None]
        return self


# ---------------------------------------------------------------------------------------------
# Markdown escaping (the HTML side is Jinja2's autoescape)

# CommonMark lets any ASCII punctuation be backslash-escaped (spec 2.4). These are the ones
# that can open markup inside a line: code spans, emphasis, links and images ([ ]), raw HTML,
# autolinks and entities (< > &), table cells (|) and strike-through (~). An underscore only
# opens emphasis at a word's edge, so simple_cnn stays readable.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>&|~])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md(value: object) -> str:
    """A value as literal Markdown text on one line."""
    text = re.sub(r"\s+", " ", str(value))
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def md_code(value: object) -> Markup:
    """A value as a Markdown code span, fenced by more backticks than it holds (CommonMark)."""
    text = re.sub(r"\s+", " ", str(value)).replace("|", "\\|")  # GFM: | ends a cell even here
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")


def md_fence(value: object) -> str:
    """A fence for a code block around ``value``: longer than any backtick run inside."""
    return "`" * max(3, max((len(r) for r in re.findall(r"`+", str(value))), default=0) + 1)


def md_url(href: str) -> str:
    """A link destination with what could end it (spaces, parentheses, <>) percent-encoded."""
    return quote(href, safe="/:?#@!$&'*+,;=%~-._")


# ---------------------------------------------------------------------------------------------
# writers


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("reports.render", "templates"),
                             autoescape=autoescape, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md, md_code=md_code, md_fence=md_fence, md_url=md_url, spans=spans)
    return env


HTML = _environment(autoescape=True)
MARKDOWN = _environment(autoescape=False)


def to_html(sections: list[Section], title: str, images: dict[str, str],
            top: list | None = None) -> str:
    """The self-contained report page; ``images`` are base64 PNGs by name."""
    nav_at = next((i for i, s in enumerate(sections) if s.nav), None)
    return HTML.get_template("report.html.j2").render(
        title=title, top=top or [], sections=sections, images=images, nav_at=nav_at)


def to_markdown(sections: list[Section], title: str, top: list | None = None) -> str:
    return MARKDOWN.get_template("report.md.j2").render(
        title=title, top=top or [], sections=sections)
