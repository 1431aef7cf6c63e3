"""The one Report of evaluations, demos and benchmarks: validation, JSON round trip, and
the Markdown, terminal and PNG renderers."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import ArtifactVersionError, ConfigError, InputError
from tokensmith.adapters.report import (
    render_png,
    to_markdown,
    to_terminal,
    to_text,
    write_all,
    write_json,
    write_png,
)
from tokensmith.core.report import PLOTS, Provenance, Report, Series, Table

ANSI = re.compile(r"\x1b")


def sample(**changes) -> Report:
    report = Report(
        name="awrs-throughput",
        metrics={"tokens_per_s": 1234.5, "steps": 40, "acceptance": 0.25},
        tables=(Table("by method", ("method", "tokens/s", "note"),
                      (("greedy", 1500.0, None), ("awrs", 1234.5, "two rounds"))),),
        series=(Series("loss", (0, 1, 2), (3.0, 2.0, 1.5), x_label="step", y_label="loss"),
                Series("greedy", ("short", "long"), (1.0, 2.0), plot="bar", group="speed"),
                Series("awrs", ("short", "long"), (1.5, 2.5), plot="bar", group="speed")),
        notes=("measured on 2 CPU cores",),
        provenance=Provenance(plugins={"tokensmith": "0.1.0", "tokensmith-awrs": "0.1.0"}, model="tiny-llama",
                              runtime={"device": "cpu", "dtype": "float32"}, seed=7,
                              created="2025-01-02T03:04:05+00:00", command="tokensmith bench awrs"),
    )
    return attrs.evolve(report, **changes) if changes else report


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- strategies -------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
number = st.one_of(st.integers(-2**70, 2**70), finite)
names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_+-]{0,20}\Z")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8)


@st.composite
def tables(draw):
    columns = draw(st.lists(text, min_size=1, max_size=4))
    cell = st.one_of(st.none(), text, number)
    rows = draw(st.lists(st.tuples(*[cell] * len(columns)), max_size=4))
    return Table(draw(text), tuple(columns), tuple(rows))


@st.composite
def series(draw, name):
    n = draw(st.integers(1, 6))
    x = draw(st.one_of(st.lists(finite, min_size=n, max_size=n), st.lists(text, min_size=n, max_size=n)))
    return Series(name, tuple(x), tuple(draw(st.lists(finite, min_size=n, max_size=n))),
                  x_label=draw(text), y_label=draw(text), plot=draw(st.sampled_from(PLOTS)), group=draw(text))


@st.composite
def reports(draw):
    series_names = draw(st.lists(st.text(min_size=1, max_size=8), max_size=3, unique=True))
    provenance = Provenance(
        plugins=draw(st.dictionaries(st.text(min_size=1, max_size=10), text, max_size=3)),
        model=draw(text), runtime=draw(st.dictionaries(text, json_values, max_size=3)),
        seed=draw(st.none() | st.integers()),
        created=draw(st.sampled_from(["", "2025-01-02T03:04:05+00:00"])),
        command=draw(text), extra=draw(st.dictionaries(text, json_values, max_size=3)))
    return Report(draw(names), draw(st.dictionaries(st.text(min_size=1, max_size=10), number, max_size=5)),
                  tuple(draw(st.lists(tables(), max_size=3))), tuple(draw(series(n)) for n in series_names),
                  tuple(draw(st.lists(text, max_size=3))), provenance)


# -- the record -------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(reports())
def test_json_round_trips_every_report(report):
    text = report.to_json()
    assert Report.from_json(text) == report
    assert Report.from_json(text).to_json() == text  # stable: the same report, the same bytes
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_json_keeps_ints_and_floats_apart_and_converts_numpy_scalars():
    np = pytest.importorskip("numpy")
    report = Report("r", {"count": np.int64(3), "mean": np.float32(0.5), "float": 2.0})
    assert report.metrics == {"count": 3, "mean": 0.5, "float": 2.0}
    assert [type(v) for v in Report.from_json(report.to_json()).metrics.values()] == [int, float, float]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_everywhere(value):
    with pytest.raises(InputError, match="finite") as err:
        Report("r", {"loss": value})
    assert err.value.component == "report 'r'" and "notes" in err.value.hint
    with pytest.raises(InputError, match="finite"):
        Table("t", ("a",), ((value,),))
    with pytest.raises(InputError, match="finite"):
        Series("s", (1.0,), (value,))
    with pytest.raises(InputError, match="JSON values"):
        Provenance(runtime={"lr": value})


@pytest.mark.parametrize("value", [True, "1.0", None, [1.0]])
def test_a_metric_is_a_number(value):
    with pytest.raises(InputError, match="must be a number"):
        Report("r", {"m": value})


def test_series_lengths_must_match():
    with pytest.raises(InputError, match="x has 3 values but y has 2") as err:
        Series("loss", (1, 2, 3), (1.0, 2.0))
    assert err.value.component == "report series 'loss'"
    with pytest.raises(InputError, match="at least one point"):
        Series("loss", (), ())


def test_series_checks_plot_kind_categories_and_log_scales():
    with pytest.raises(InputError, match="not one of"):
        Series("s", (1,), (1,), plot="pie")
    with pytest.raises(InputError, match="must be a number"):
        Series("s", ("a", 2), (1, 2))
    with pytest.raises(InputError, match="log_x needs numeric"):
        Series("s", ("a",), (1,), log_x=True)
    with pytest.raises(InputError, match="log_y needs positive"):
        Series("s", (1,), (0.0,), log_y=True)
    assert Series("s", (1, 2), (3, 4)).x == (1.0, 2.0)


def test_ragged_tables_are_refused():
    with pytest.raises(InputError, match="row 1 has 1 cells but the table has 2 columns") as err:
        Table("scores", ("a", "b"), ((1, 2), (3,)))
    assert err.value.component == "report table 'scores'"
    with pytest.raises(InputError, match="at least one column"):
        Table("t", (), ())
    with pytest.raises(InputError, match="must be a sequence"):
        Table("t", "ab", ())
    with pytest.raises(InputError, match="must be a number"):
        Table("t", ("a",), ((object(),),))


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "..", "a..b", ".hidden", "x y", "con:1", "é", "a" * 129])
def test_names_are_safe_file_stems(name):
    with pytest.raises(InputError):
        Report(name)


def test_a_report_refuses_wrong_parts_and_duplicate_series():
    with pytest.raises(InputError, match="Table records"):
        Report("r", tables=({"title": "t"},))
    with pytest.raises(InputError, match="unique"):
        Report("r", series=(Series("s", (1,), (1,)), Series("s", (2,), (2,))))
    with pytest.raises(InputError, match="UTF-8"):
        Report("r", notes=("\ud800",))
    with pytest.raises(InputError, match="ISO 8601"):
        Provenance(created="yesterday")


def test_evolve_and_with_metrics_validate_again():
    report = sample()
    more = report.with_metrics({"a": 1}, b=2.5)
    assert more.metrics == {**report.metrics, "a": 1, "b": 2.5} and report.metrics.get("a") is None
    with pytest.raises(InputError, match="finite"):
        report.with_metrics(c=math.nan)
    with pytest.raises(InputError, match="safe file stem"):
        attrs.evolve(report, name="../x")


def test_from_json_refuses_other_formats_unknown_keys_and_garbage():
    data = json.loads(sample().to_json())
    with pytest.raises(ArtifactVersionError):
        Report.from_dict({**data, "format": 2})
    with pytest.raises(InputError, match="unknown keys"):
        Report.from_dict({**data, "metrcs": {}})
    with pytest.raises(InputError, match="missing keys"):
        Report.from_dict({**data, "series": [{"name": "s", "x": [1]}]})
    with pytest.raises(InputError, match="not a report's JSON"):
        Report.from_json("{not json")


def test_provenance_collect_lists_installed_tokensmith_distributions(installed_registry):
    installed = {ep.dist.name: ep.dist.version for ep in metadata.entry_points(group="tokensmith")}
    p = Provenance.collect()
    assert p.plugins["tokensmith"] == metadata.version("tokensmith")
    assert installed.items() <= p.plugins.items()
    from_registry = Provenance.collect(installed_registry)
    assert {i.distribution: i.version for i in installed_registry.plugins.values()}.items() \
        <= from_registry.plugins.items()


def test_provenance_collect_takes_runtime_model_and_seed():
    from tokensmith import ModelSource, Runtime

    p = Provenance.collect(runtime=Runtime(seed=11), model=ModelSource("tiny-llama"), command="x")
    assert (p.runtime["device"], p.seed, p.model, p.command) == ("cpu", 11, "tiny-llama", "x")
    assert Provenance.collect(runtime=Runtime(seed=11), seed=3).seed == 3
    assert p.created.endswith("+00:00") and "python" in p.extra
    assert Report.from_json(Report("r", provenance=p).to_json()).provenance == p
    shaped = Provenance(runtime={"shape": (2, 3)}, extra={1: "one"})  # stored as JSON gives it back
    assert (shaped.runtime, shaped.extra) == ({"shape": [2, 3]}, {"1": "one"})
    assert Report.from_json(Report("r", provenance=shaped).to_json()).provenance == shaped


def test_the_docs_example_runs_and_shows_what_it_says(monkeypatch, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr("tempfile.mkdtemp", lambda: str(tmp_path))
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reports.md").read_text()
    example, shown = re.findall(r"```(?:python|text)\n(.*?)```", doc, re.S)[:2]  # the Example section
    exec(compile(example, "docs/reports.md", "exec"), {})
    printed = capsys.readouterr().out
    assert shown.strip() in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "greedy-vs-awrs.json", "greedy-vs-awrs.md", "greedy-vs-awrs.png"]


def test_importing_the_record_stays_light(tmp_path):
    code = ("import sys, tokensmith.core.report; "
            "print(sorted({'torch', 'matplotlib', 'rich', 'transformers'} & set(sys.modules)))")
    # cwd: not the source tree, whose tokensmith/ folder would shadow the installed package
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          check=True).stdout.strip() == "[]"


# -- Markdown ---------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    """A Markdown table row split at its unescaped pipes, each cell unescaped (``<br>`` is a
    line break: a literal ``<`` is escaped)."""
    assert line.startswith("|") and line.endswith("|")
    cells, cell, i = [], "", 1
    while i < len(line) - 1:
        if line.startswith("<br>", i):
            cell, i = cell + "\n", i + 4
        elif line[i] == "\\":
            cell, i = cell + line[i + 1], i + 2
        elif line[i] == "|":
            cells.append(cell)
            cell, i = "", i + 1
        else:
            cell, i = cell + line[i], i + 1
    cells.append(cell)
    assert all(c.startswith(" ") and c.endswith(" ") and len(c) >= 2 for c in cells), cells
    return [c[1:-1] for c in cells]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.just("\n"), max_size=15),
                min_size=1, max_size=4))
def test_markdown_cells_never_break_a_row_and_show_their_text(cells):
    table = Table("t", tuple(f"c{i}" for i in range(len(cells))), (tuple(cells),))
    lines = to_markdown(Report("r", tables=(table,))).splitlines()
    row = lines[lines.index("| " + " | ".join(table.columns) + " |") + 2]
    assert _cells(row) == cells


def test_markdown_has_metrics_tables_notes_image_and_provenance():
    table = Table("by method", ("method", "tokens/s", "note"),
                  (("greedy", 1500.0, None), ("awrs", 1234.5, "two rounds"), ("a|b", 1, "x\ny")))
    md = to_markdown(sample(notes=("a *bold* claim", "line\nbreak"), tables=(table,)),
                     image="awrs-throughput.png")
    assert "| metric | value |\n|---|---:|\n| tokens\\_per\\_s | 1234.5 |\n| steps | 40 |" in md
    assert "### by method" in md and "| awrs | 1234.5 | two rounds |" in md and "| greedy | 1500 |  |" in md
    assert "| a\\|b | 1 | x<br>y |" in md
    assert "- a \\*bold\\* claim" in md and "- line<br>break" in md
    assert "![awrs-throughput](awrs-throughput.png)" in md
    assert "tokensmith-awrs 0.1.0" in md and "model tiny-llama" in md and "seed 7" in md


# -- terminal ---------------------------------------------------------------------

def test_terminal_output_is_plain_aligned_text_off_a_tty():
    out = io.StringIO()
    to_terminal(sample(notes=("\x1b[31mred\x1b[0m from a model",)), out)
    text = out.getvalue()
    assert not ANSI.search(text) and "\\x1b[31mred" in text
    lines = text.splitlines()
    assert "  tokens_per_s  1234.5" in lines and "  steps             40" in lines
    header = next(line for line in lines if line.startswith("  method"))
    greedy = next(line for line in lines if line.startswith("  greedy"))
    assert header.index("tokens/s") + len("tokens/s") == greedy.index("1500") + len("1500")  # right-aligned
    assert text == to_text(sample(notes=("\x1b[31mred\x1b[0m from a model",)))


def test_terminal_output_uses_rich_tables_on_a_tty(monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    out = FakeTTY()
    to_terminal(sample(notes=("[bold]not markup[/bold]",)), out)
    text = out.getvalue()
    assert "┃" in text or "│" in text  # a rich table, not the plain view
    for value in ("tokens_per_s", "1234.5", "by method", "greedy", "two rounds", "[bold]not markup[/bold]"):
        assert value in re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_no_color_gives_the_plain_view_even_on_a_tty(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = FakeTTY()
    to_terminal(sample(), out)
    assert out.getvalue() == to_text(sample())


# -- files ------------------------------------------------------------------------

def test_write_all_writes_json_markdown_and_png_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    paths = write_all(sample(), tmp_path / "out")
    assert set(paths) == {"json", "md", "png"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "awrs-throughput.json", "awrs-throughput.md", "awrs-throughput.png"]  # no temporary file left
    assert Report.from_json(paths["json"].read_text()) == sample()
    assert paths["png"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "](awrs-throughput.png)" in paths["md"].read_text()


def test_png_does_not_touch_the_pyplot_backend(tmp_path):
    pytest.importorskip("matplotlib")
    code = ("import sys, matplotlib; matplotlib.use('svg'); "
            "from tokensmith.adapters.report import write_png; from tokensmith.core.report import *; "
            f"write_png(Report('r', series=(Series('s', (1, 2), (3, 4)),)), {str(tmp_path / 'r.png')!r}); "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    assert out.split() == ["svg", "False"]
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


def test_a_report_without_series_has_no_png(tmp_path):
    report = sample(series=())
    assert render_png(report) is None and write_png(report, tmp_path / "x.png") is None
    assert set(write_all(report, tmp_path)) == {"json", "md"}
    assert "![" not in (tmp_path / "awrs-throughput.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["awrs-throughput.json", "awrs-throughput.md"]


def test_missing_matplotlib_is_a_typed_error_naming_the_extra(monkeypatch, tmp_path):
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match="matplotlib") as err:
        write_all(sample(), tmp_path, png=True)
    assert "tokensmith[bench]" in err.value.hint
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_without_matplotlib_write_all_writes_json_and_markdown_with_a_note(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    paths = write_all(sample(), tmp_path)
    assert set(paths) == {"json", "md"}
    written = Report.from_json(paths["json"].read_text())
    assert written.notes[-1].startswith("no PNG: matplotlib is not installed")
    assert attrs.evolve(written, notes=written.notes[:-1]) == sample()
    assert set(write_all(sample(), tmp_path / "none", png=False)) == {"json", "md"}


def test_write_json_is_atomic_and_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    path = write_json(sample(), tmp_path / "r.json")
    before = path.read_text()
    import tokensmith.adapters.artifacts as artifacts

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json(sample(name="other"), path)
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["r.json"]
