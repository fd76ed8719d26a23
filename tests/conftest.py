"""Shared test configuration.

Markers (declared in pyproject.toml):

* ``live``: needs root, bcc, kernel headers and tracefs. Outside CI a missing
  prerequisite skips the test with the reason; under CI (``CI`` set to a true
  value) it FAILS, so a broken recorder can never hide behind a skip.
* ``container``: additionally needs runc and busybox-static; same rule.
* ``shared``: reads ``../shared/`` reference material; skipped when absent
  (users do not have it), in CI too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def in_ci() -> bool:
    """True when running under CI (``CI`` is set and not false/0)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def live_missing() -> str | None:
    """Why live recording cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "not root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc is not importable (run scripts/setup.sh)"
    if not Path("/sys/kernel/tracing/events").is_dir():
        return "tracefs is not mounted at /sys/kernel/tracing"
    if not Path(f"/lib/modules/{os.uname().release}/build").exists():
        return "no kernel headers at /lib/modules/$(uname -r)/build"
    return None


def container_missing() -> str | None:
    """Why a runc container cannot run here, or None when it can."""
    why = live_missing()
    if why:
        return why
    if not shutil.which("runc"):
        return "runc is not installed"
    if not Path("/bin/busybox").exists():
        return "busybox-static is not installed"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    checks = []
    if item.get_closest_marker("live"):
        checks.append(live_missing)
    if item.get_closest_marker("container"):
        checks.append(container_missing)
    for check in checks:
        why = check()
        if why:
            if in_ci():
                pytest.fail(f"CI must run this test, but {why}", pytrace=False)
            pytest.skip(why)
    if item.get_closest_marker("shared") and not SHARED.is_dir():
        pytest.skip("../shared/ reference material is not present")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` directory (tests using it must carry the ``shared`` marker)."""
    if not SHARED.is_dir():
        pytest.skip("../shared/ reference material is not present")
    return SHARED
