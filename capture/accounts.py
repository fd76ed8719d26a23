"""Users and groups: the host's /etc/passwd and /etc/group, and containers' rootfs ones."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from fcap.schema import GROUPS, USERS


def parse_passwd(text: str, container_id: str | None = None) -> list[dict]:
    """Rows of USERS from passwd(5) text (malformed lines skipped)."""
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 7:
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        if not (0 <= uid < 2**32 and 0 <= gid < 2**32):
            continue
        rows.append({"uid": uid, "name": parts[0], "gid": gid, "home": parts[5],
                     "shell": parts[6], "container_id": container_id})
    return rows


def parse_group(text: str, container_id: str | None = None) -> list[dict]:
    """Rows of GROUPS from group(5) text."""
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 3:
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        if 0 <= gid < 2**32:
            rows.append({"gid": gid, "name": parts[0], "container_id": container_id})
    return rows


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def read_accounts(
    root: Path = Path("/"), containers: Iterable[tuple[str, Path]] = ()
) -> tuple[pa.Table, pa.Table]:
    """USERS and GROUPS tables: the host's (container_id null) plus each readable container rootfs.

    ``containers`` yields (container id, rootfs path) pairs.
    """
    users = parse_passwd(_read(root / "etc/passwd"))
    groups = parse_group(_read(root / "etc/group"))
    for cid, rootfs in containers:
        users += parse_passwd(_read(Path(rootfs) / "etc/passwd"), cid)
        groups += parse_group(_read(Path(rootfs) / "etc/group"), cid)
    return pa.Table.from_pylist(users, schema=USERS), pa.Table.from_pylist(groups, schema=GROUPS)
