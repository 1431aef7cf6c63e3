"""Rendering a :class:`~tokensmith.core.report.Report`: JSON, Markdown, the terminal, PNG.

Every file is written atomically (:func:`atomic_write_bytes`). The terminal view uses
rich for tables when the stream is a TTY (and ``NO_COLOR`` is unset) and plain aligned
text, with no escape sequence at all, otherwise (files, pipes, CI logs). PNGs need
matplotlib (``pip install 'tokensmith[bench]'``) and are drawn on a
:class:`matplotlib.figure.Figure` with the Agg canvas, so the pyplot backend an
interactive user chose is left alone. rich and matplotlib are imported only when used.
"""

from __future__ import annotations

import io
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from tokensmith.core.errors import ConfigError
from tokensmith.core.report import Report, Series
from tokensmith.core.text import is_tty

from .artifacts import atomic_write_bytes, atomic_write_text

_MD_SPECIAL = set("\\`*_[]<>|~#")


def format_value(value: Any) -> str:
    """A cell or metric as shown to people: ints exactly, floats to 6 significant digits,
    ``None`` (a missing cell) as an empty string."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _visible(text: str) -> str:
    """Control characters (newlines, tabs, ESC...) as ``\\n``/``\\t``/``\\xNN``, so that a
    value from a model's output cannot move the cursor, colour the terminal or break a row."""
    out = []
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}"))
        else:
            out.append(ch)
    return "".join(out)


def _provenance_line(report: Report) -> str:
    p = report.provenance
    parts = []
    if p.plugins:
        parts.append(", ".join(f"{d} {v}" for d, v in p.plugins.items()))
    if p.model:
        parts.append(f"model {p.model}")
    if p.runtime:
        parts.append(", ".join(f"{k} {v}" for k, v in p.runtime.items() if k != "seed"))
    if p.seed is not None:
        parts.append(f"seed {p.seed}")
    parts += [v for v in (p.created, p.command) if v]
    return " · ".join(part for part in parts if part)


# -- JSON ---------------------------------------------------------------------

def write_json(report: Report, path: str | Path) -> Path:
    """Write ``report.to_json()`` to ``path`` atomically."""
    atomic_write_text(path, report.to_json())
    return Path(path)


# -- Markdown -----------------------------------------------------------------

def _numeric_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[bool]:
    """Which columns hold only numbers (and missing cells): those are right-aligned."""
    return [bool(rows) and all(r[j] is None or not isinstance(r[j], str) for r in rows)
            for j in range(len(columns))]


def _series_line(s: Series) -> str:
    return (f"series {_visible(s.name)}: {len(s.y)} points, {s.plot}"
            + (f" (group {_visible(s.group)})" if s.group else ""))


def _md(text: str) -> str:
    """``text`` as one line of Markdown that shows exactly ``text``: Markdown's special
    characters (``|`` among them, so a cell never splits) backslash-escaped, line breaks
    as ``<br>``, other control characters made visible."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<br>".join("".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in _visible(line))
                       for line in lines)


def _md_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    rows = [list(r) for r in rows]
    numeric = _numeric_columns(columns, rows)
    lines = ["| " + " | ".join(_md(c) for c in columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_md(format_value(v)) for v in r) + " |" for r in rows]
    return lines


def to_markdown(report: Report, *, image: str | None = None, level: int = 2) -> str:
    """The report as Markdown for a README: a heading, the metrics as a two-column table,
    each table, the plot (``image``, a path relative to the Markdown file) when given, the
    notes as a list, and the provenance as a footer line."""
    hashes = "#" * level
    lines = [f"{hashes} {_md(report.name)}", ""]
    if report.metrics:
        lines += _md_table(("metric", "value"), report.metrics.items()) + [""]
    for table in report.tables:
        lines += [f"{hashes}# {_md(table.title)}", ""] if table.title else []
        lines += _md_table(table.columns, table.rows) + [""]
    if image:
        lines += [f"![{_md(report.name)}]({image.replace(' ', '%20').replace(')', '%29')})", ""]
    if report.notes:
        lines += [f"- {_md(note)}" for note in report.notes] + [""]
    footer = _provenance_line(report)
    if footer:
        lines += [f"<sub>{_md(footer)}</sub>", ""]
    return "\n".join(lines)


def write_markdown(report: Report, path: str | Path, *, image: str | None = None) -> Path:
    atomic_write_text(path, to_markdown(report, image=image))
    return Path(path)


# -- terminal -----------------------------------------------------------------

def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[_visible(format_value(v)) for v in row] for row in rows]
    head = [_visible(c) for c in columns]
    widths = [max([_width(head[j])] + [_width(r[j]) for r in cells]) for j in range(len(columns))]
    right = _numeric_columns(columns, rows)

    def line(values: Sequence[str]) -> str:
        pads = [" " * (w - _width(v)) for v, w in zip(values, widths)]
        return "  " + "  ".join(p + v if r else v + p for v, p, r in zip(values, pads, right)).rstrip()

    return [line(head), line(["-" * w for w in widths])] + [line(r) for r in cells]


def to_text(report: Report) -> str:
    """The plain terminal view: aligned columns, no escape sequences."""
    lines = [_visible(report.name)]
    if report.metrics:
        lines += [""] + _plain_table(("metric", "value"), list(report.metrics.items()))
    for table in report.tables:
        lines += ["", _visible(table.title)] + _plain_table(table.columns, table.rows)
    if report.series:
        lines += [""] + [_series_line(s) for s in report.series]
    if report.notes:
        lines += [""] + [f"  - {_visible(n)}" for n in report.notes]
    footer = _provenance_line(report)
    if footer:
        lines += ["", _visible(footer)]
    return "\n".join(lines) + "\n"


def to_terminal(report: Report, out: TextIO | None = None) -> None:
    """Show ``report`` on ``out`` (default stdout): rich tables on a TTY, else :func:`to_text`."""
    out = sys.stdout if out is None else out
    if not is_tty(out):
        out.write(to_text(report))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False, emoji=False, markup=False)

    def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              numeric: Sequence[bool]) -> Table:
        t = Table(title=Text(_visible(title)) if title else None, title_justify="left")
        for column, right in zip(columns, numeric):
            t.add_column(Text(_visible(column)), justify="right" if right else "left")
        for row in rows:
            t.add_row(*(Text(_visible(format_value(v))) for v in row))
        return t

    console.print(Text(_visible(report.name), style="bold"))
    if report.metrics:
        console.print(table("", ("metric", "value"), report.metrics.items(), [False, True]))
    for t in report.tables:
        console.print(table(t.title, t.columns, t.rows, _numeric_columns(t.columns, t.rows)))
    for s in report.series:
        console.print(Text(_series_line(s), style="dim"))
    for note in report.notes:
        console.print(Text(f"• {_visible(note)}"))
    footer = _provenance_line(report)
    if footer:
        console.print(Text(_visible(footer), style="dim"))


# -- PNG ----------------------------------------------------------------------

def _groups(series: Sequence[Series]) -> list[tuple[str, list[Series]]]:
    """Series by group, in order of first appearance; a series without a group alone."""
    groups: dict[str, list[Series]] = {}
    for s in series:
        groups.setdefault(f"group:{s.group}" if s.group else f"series:{s.name}", []).append(s)
    return [(key.split(":", 1)[1], members) for key, members in groups.items()]


def _draw(ax: Any, members: list[Series]) -> None:
    categories: list[str] = []
    for s in members:
        categories += [c for c in s.x if s.categorical and c not in categories]
    bars = [s for s in members if s.plot == "bar"]
    width = 0.8 / max(len(bars), 1)
    for s in members:
        xs = [categories.index(c) for c in s.x] if s.categorical else list(s.x)
        if s.plot == "bar":
            k = bars.index(s)
            shift = (k - (len(bars) - 1) / 2) * width if s.categorical else 0.0
            ax.bar([x + shift for x in xs], s.y, width if s.categorical else 0.8, label=s.name,
                   alpha=1.0 if s.categorical else 0.7)
        elif s.plot == "scatter":
            ax.scatter(xs, s.y, label=s.name, s=12)
        elif s.plot == "step":
            ax.step(xs, s.y, where="post", label=s.name)
        else:
            ax.plot(xs, s.y, marker="o" if len(xs) <= 20 else None, markersize=3, label=s.name)
    if categories:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, rotation=30 if sum(map(len, categories)) > 40 else 0, ha="right"
                           if sum(map(len, categories)) > 40 else "center")
    if any(s.log_x for s in members):
        ax.set_xscale("log")
    if any(s.log_y for s in members):
        ax.set_yscale("log")
    ax.set_xlabel(next((s.x_label for s in members if s.x_label), ""))
    ax.set_ylabel(next((s.y_label for s in members if s.y_label), ""))
    if len(members) > 1:
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)


def render_png(report: Report, *, dpi: int = 100) -> bytes | None:
    """The report's series as PNG bytes, one subplot per group; ``None`` when the report
    has no series (its metrics and tables are in the JSON, Markdown and terminal views)."""
    if not report.series:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("writing a report's PNG needs matplotlib, which is not installed",
                          component=f"report {report.name!r}",
                          hint="pip install 'tokensmith[bench]' (or write JSON and Markdown only)") from None
    groups = _groups(report.series)
    cols = min(len(groups), 3)
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(4.8 * cols, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (title, members) in enumerate(groups):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw(ax, members)
        ax.set_title(title, fontsize="medium")
    fig.suptitle(report.name)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "tokensmith"})
    return buffer.getvalue()


def write_png(report: Report, path: str | Path, *, dpi: int = 100) -> Path | None:
    """Write the PNG of :func:`render_png` atomically; ``None`` (and no file) without series."""
    data = render_png(report, dpi=dpi)
    if data is None:
        return None
    atomic_write_bytes(path, data)
    return Path(path)


def write_all(report: Report, out_dir: str | Path, *, png: bool | None = None) -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md`` and, when the report has series, ``<name>.png``
    into ``out_dir`` (created if needed); returns ``{"json": ..., "md": ..., "png": ...}``.

    ``png=None`` (default): the PNG is drawn when matplotlib is installed; without it the
    JSON and Markdown get a note saying so (matplotlib is the optional ``bench`` extra).
    ``png=True``: the PNG is required (ConfigError without matplotlib); ``png=False``: none.
    The PNG is drawn before anything is written, so a failure leaves no files; a ``<name>.png``
    left by an earlier report of that name is removed when this one has none."""
    import importlib.util

    out = Path(out_dir)
    image = None
    if report.series and png is not False:
        if png is None and importlib.util.find_spec("matplotlib") is None:
            report = attrs.evolve(report, notes=(*report.notes, "no PNG: matplotlib is not installed "
                                                 "(pip install 'tokensmith[bench]')"))
        else:
            image = render_png(report)
    paths = {"json": write_json(report, out / f"{report.name}.json")}
    if image is not None:
        paths["png"] = out / f"{report.name}.png"
        atomic_write_bytes(paths["png"], image)
    paths["md"] = write_markdown(report, out / f"{report.name}.md",
                                 image=paths["png"].name if "png" in paths else None)
    if "png" not in paths:  # an earlier run's plot would sit next to this run's numbers
        (out / f"{report.name}.png").unlink(missing_ok=True)
    return paths
