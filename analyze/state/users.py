"""User and group tables keyed by (id, container) for ``user.*`` / ``group.*``.

libsinsp looks a uid up in the user table of the event's container (the
container's /etc/passwd), or the host's for host processes; ``cid`` is the full
container id, '' for the host.
"""

from __future__ import annotations

from typing import Any

from fcap.analyze.state import hosts


def build(con: Any) -> None:
    """``fc_users(uid, cid, name, home, shell, host)`` and ``fc_groups(gid, cid, name, host)``.

    Several hosts (:mod:`fcap.analyze.state.hosts`): the host users and groups of each host
    (a container's once), with a ``host`` column: each host's processes read their own."""
    if hosts.index(con) is not None:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE fc_users AS
            SELECT DISTINCT ON (uid, cid, hkey) uid, cid, name, home, shell, host
            FROM (SELECT uid, name, home, shell, coalesce(container_id, '') AS cid,
                         coalesce(host, '') AS host,
                         CASE WHEN coalesce(container_id, '') = '' THEN coalesce(host, '') END AS hkey
                  FROM raw_users)
            ORDER BY uid, cid, hkey, host;
            CREATE OR REPLACE TEMP TABLE fc_groups AS
            SELECT DISTINCT ON (gid, cid, hkey) gid, cid, name, host
            FROM (SELECT gid, name, coalesce(container_id, '') AS cid,
                         coalesce(host, '') AS host,
                         CASE WHEN coalesce(container_id, '') = '' THEN coalesce(host, '') END AS hkey
                  FROM raw_groups)
            ORDER BY gid, cid, hkey, host;
            """
        )
        return
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_users AS
        SELECT DISTINCT ON (uid, cid) uid, coalesce(container_id, '') AS cid, name, home, shell,
               coalesce(host, '') AS host
        FROM raw_users ORDER BY uid, cid;
        CREATE OR REPLACE TEMP TABLE fc_groups AS
        SELECT DISTINCT ON (gid, cid) gid, coalesce(container_id, '') AS cid, name,
               coalesce(host, '') AS host
        FROM raw_groups ORDER BY gid, cid;
        """
    )
