"""docs/fields.md is generated from the catalog and must match it."""

from __future__ import annotations

from pathlib import Path

from fcap.analyze.fields import doc
from fcap.analyze.fields.catalog import FIELDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "fields.md"


def test_committed_doc_matches_the_catalog() -> None:
    assert DOC.read_text() == doc.render(), (
        "docs/fields.md is stale: run .venv/bin/python -m fcap.analyze.fields.doc"
    )


def test_doc_lists_every_field_once() -> None:
    text = doc.render()
    for d in FIELDS:
        assert text.count(f"| `{d.name}`") == 1, d.name


def test_every_view_column_is_documented() -> None:
    from fcap.analyze.enrich import view_columns

    text = doc.render()
    for col in view_columns():
        assert f"`{col}`" in text, col
