"""Shared helper of the hunting tests (test_api, test_views, test_sql_cli, test_hunting_doc,
test_notebook): the scripted sample capture of the cookbook."""

from __future__ import annotations

from pathlib import Path


def sample_capture(directory: Path) -> Path:
    """The cookbook's sample capture, written into ``directory``."""
    from fcap.analyze.hunt import sample

    return sample.build(directory / "hunt-sample.parquet")
