"""User and group tables keyed by (id, container) for ``user.*`` / ``group.*``.

libsinsp looks a uid up in the user table of the event's container (the
container's /etc/passwd), or the host's for host processes; ``cid`` is the full
container id, '' for the host.
"""

from __future__ import annotations

from typing import Any


def build(con: Any) -> None:
    """``fc_users(uid, cid, name, home, shell)`` and ``fc_groups(gid, cid, name)``."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_users AS
        SELECT DISTINCT ON (uid, cid) uid, coalesce(container_id, '') AS cid, name, home, shell
        FROM raw_users ORDER BY uid, cid;
        CREATE OR REPLACE TEMP TABLE fc_groups AS
        SELECT DISTINCT ON (gid, cid) gid, coalesce(container_id, '') AS cid, name
        FROM raw_groups ORDER BY gid, cid;
        """
    )
