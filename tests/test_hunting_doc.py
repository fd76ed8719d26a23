"""docs/hunting.md is executable: every query of the cookbook runs against the sample
capture and must return exactly the table the page shows under it.

Format of the page: a fenced ``sql`` block (or a ``falco`` block: a condition run through
``Capture.filter``), then a line ``<!-- result -->`` (options: ``unordered``,
``columns="proc.name,fd.name"`` for conditions, ``capture="samples"`` to run it over the
committed recordings ``samples/*/capture.parquet`` opened as one), then the expected result as a Markdown
table whose cells are DuckDB's text form of each value (``NULL`` for null, ``\\|`` for a
pipe). The view-contract section between ``<!-- contract:begin -->`` and
``<!-- contract:end -->`` must equal ``contract.render_markdown()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import hunt_support
import pytest
from fcap.analyze.hunt import contract

DOC = Path(__file__).resolve().parents[1] / "docs" / "hunting.md"

_BLOCK = re.compile(
    r"```(?P<lang>sql|falco)\n(?P<body>.*?)```\n\s*<!-- result(?P<opts>[^>]*)-->\n"
    r"(?P<table>(?:\|[^\n]*\n)*)",
    re.S,
)


@dataclass(frozen=True)
class Example:
    """One executable example of the page."""

    lang: str
    text: str
    line: int
    unordered: bool
    columns: tuple[str, ...]
    capture: str  # "sample" (the scripted cookbook capture) or "samples" (samples/*/)
    expected: tuple[tuple[str, ...], ...]  # header first
    start: int  # offsets of the table in the page (for regeneration)
    end: int


def _cells(line: str) -> tuple[str, ...]:
    inner = line.strip()[1:-1]
    parts = re.split(r"(?<!\\)\|", inner)
    return tuple(p.strip().replace("\\|", "|") for p in parts)


def parse(text: str) -> list[Example]:
    """Every example of the page, in order."""
    out = []
    for m in _BLOCK.finditer(text):
        opts = m.group("opts")
        cols = re.search(r'columns="([^"]*)"', opts)
        which = re.search(r'capture="([^"]*)"', opts)
        rows = [ln for ln in m.group("table").splitlines() if ln.strip()]
        table = [_cells(r) for i, r in enumerate(rows) if i != 1]
        out.append(
            Example(
                lang=m.group("lang"),
                text=m.group("body").strip(),
                line=text.count("\n", 0, m.start()) + 1,
                unordered="unordered" in opts,
                columns=tuple(c.strip() for c in cols.group(1).split(",")) if cols else (),
                capture=which.group(1) if which else "sample",
                expected=tuple(table),
                start=m.start("table"),
                end=m.end("table"),
            )
        )
    return out


def run(cap, ex: Example) -> tuple[tuple[str, ...], ...]:  # type: ignore[no-untyped-def]
    """Header and rows of an example's result, every cell as DuckDB text."""
    res = cap.sql(ex.text) if ex.lang == "sql" else cap.filter(ex.text, list(ex.columns))
    rel = res.relation
    proj = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in rel.columns)
    rows = rel.project(proj).fetchall()
    body = tuple(tuple("NULL" if v is None else v for v in r) for r in rows)
    return (tuple(rel.columns), *body)


def render(table: tuple[tuple[str, ...], ...]) -> str:
    """A result as the page writes it."""
    def esc(v: str) -> str:
        return v.replace("|", "\\|")

    head, *rows = table
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


EXAMPLES = parse(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cap(tmp_path_factory):  # type: ignore[no-untyped-def]
    import fcap

    path = hunt_support.sample_capture(tmp_path_factory.mktemp("hunt-doc"))
    with fcap.open(path) as c:
        yield c


def test_page_has_enough_hunts() -> None:
    sql = [e for e in EXAMPLES if e.lang == "sql"]
    assert len(sql) >= 12, f"docs/hunting.md has {len(sql)} SQL hunts with results"
    assert all(len(e.expected) >= 1 for e in sql), "every SQL example needs a result table"
    # every fenced sql block of the page is an example (none is left unchecked)
    fences = re.findall(r"```sql\n", DOC.read_text(encoding="utf-8"))
    assert len(fences) == len(sql)


def test_contract_section_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- contract:begin -->\n(.*?)<!-- contract:end -->", text, re.S)
    assert m, "docs/hunting.md lacks the contract markers"
    assert m.group(1) == contract.render_markdown(), (
        "docs/hunting.md's view contract is stale: regenerate it from "
        "fcap.analyze.hunt.contract.render_markdown()"
    )


SAMPLES = sorted((DOC.parents[1] / "samples").glob("*/capture.parquet"))


@pytest.fixture(scope="module")
def samples_cap():  # type: ignore[no-untyped-def]
    import fcap

    if not SAMPLES:
        pytest.skip("no recorded samples in samples/*/capture.parquet")
    with fcap.open(SAMPLES) as c:
        yield c


@pytest.mark.parametrize("ex", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_example(request, ex: Example) -> None:  # type: ignore[no-untyped-def]
    cap = request.getfixturevalue("samples_cap" if ex.capture == "samples" else "cap")
    got = run(cap, ex)
    want = ex.expected
    assert got[0] == want[0], f"columns differ at docs/hunting.md:{ex.line}"
    if ex.unordered:
        assert sorted(got[1:]) == sorted(want[1:]), f"docs/hunting.md:{ex.line}"
    else:
        assert got[1:] == want[1:], f"docs/hunting.md:{ex.line}\n{render(got)}"


def test_error_examples_are_what_fcap_prints(cap, capsys) -> None:  # type: ignore[no-untyped-def]
    """The console block of the "Errors" section: each command's stderr, verbatim."""
    import shlex

    from fcap.cli import main

    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Errors"):]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block
    commands: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            commands[-1][1].append(line)
    assert len(commands) >= 2
    for command, expected in commands:
        argv = shlex.split(command)
        assert argv[:3] == ["fcap", "sql", "trace.parquet"]
        argv[2] = str(cap.paths[0])
        with pytest.raises(SystemExit) as exit_info:
            main(argv[1:])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        want = "\n".join(expected)
        if want.endswith(", ..."):  # a long list, shortened on the page
            assert err.startswith(want[: -len(", ...")]), err
        else:
            assert err.rstrip("\n") == want, err


def _print_differences() -> None:
    """``python tests/test_hunting_doc.py``: print each example whose result differs from the
    page, with the table it gives now, for a person to check against the capture's story
    before editing the page (the page is never rewritten automatically)."""
    import tempfile

    import fcap

    with tempfile.TemporaryDirectory() as tmp:
        caps = {"sample": fcap.open(hunt_support.sample_capture(Path(tmp)))}
        if SAMPLES:
            caps["samples"] = fcap.open(SAMPLES)
        for ex in EXAMPLES:
            if ex.capture not in caps:
                continue
            got = run(caps[ex.capture], ex)
            if got != ex.expected:
                print(f"docs/hunting.md:{ex.line} gives:\n{render(got)}")


if __name__ == "__main__":
    _print_differences()
