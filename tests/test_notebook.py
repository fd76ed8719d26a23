"""docs/hunting-example.ipynb runs: every code cell, in order, in one namespace, without
Jupyter (``exec`` of each cell, the way a kernel would run it)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "hunting-example.ipynb"


def code_cells() -> list[tuple[str, list[str]]]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    return [("".join(c["source"]), c.get("metadata", {}).get("tags", []))
            for c in nb["cells"] if c["cell_type"] == "code"]


def run_cell(source: str, ns: dict) -> object:
    """Run a cell; return the value of its last expression (what Jupyter would display)."""
    tree = ast.parse(source)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<cell>", "exec"), ns)
    return eval(compile(last, "<cell>", "eval"), ns) if last else None


def test_notebook_runs_and_finds_what_it_says() -> None:
    ns: dict = {}
    for source, _tags in code_cells():
        value = run_cell(source, ns)
        if hasattr(value, "_repr_html_"):  # what Jupyter would render must render
            assert "<" in value._repr_html_()
    assert [r["proc_name"] for r in ns["shadow_readers"]] == ["cat"]
    assert ns["shadow_readers"][0]["login_user"] == "alice"
    assert ("host", "203.0.113.7", 4444, 1) in ns["outbound_rows"]
    assert ns["dropped_rows"] == [("/tmp/.x", "curl", ".x", 1.45)]
    assert ns["table"].num_rows > 0
    assert ("a1b2c3d4e5f6", "cat", "/etc/passwd") in ns["in_container_rows"]
    assert ("a1b2c3d4e5f6", "sh", "/etc/passwd") in ns["in_container_rows"]
