"""Container and pod metadata for ``container.*`` / ``k8s.*`` (Falco's container plugin).

``fc_cgroups`` maps cgroup ids to container ids (for events without a
recorded ``container_id``); ``fc_cont`` holds one row per container with the
plugin's derived fields: 12-char id, image split into repository / tag /
digest, mounts rendered as ``source:dest:mode:rdwr:propagation``, labels.
Pod fields come from the CRI annotations (``io.kubernetes.cri.sandbox-*``) or
the kubelet labels (``io.kubernetes.pod.*``) recorded in the container table.
"""

from __future__ import annotations

from typing import Any

from fcap.analyze.state import hosts

#: image reference -> (repository, tag, digest), as the plugin splits it.
_IMG_RE = r"^(.*?)(?::([^/:@]+))?(?:@([a-z0-9]+:[0-9a-fA-F]+))?$"


def _ann(key: str) -> str:
    return f"coalesce(element_at(annotations, '{key}')[1], element_at(labels, '{key}')[1])"


def build(con: Any) -> None:
    """``fc_cgroups(id, path, container_id)`` and ``fc_cont`` (one row per full container id).

    Several hosts: cgroup ids are per host, so ``fc_cgroups`` has one row per (host,
    id) and a column ``hk``, the host index (:mod:`fcap.analyze.state.hosts`).
    """
    hk = hosts.index(con)
    cg = ("SELECT DISTINCT ON (id) id, path, container_id FROM raw_cgroups ORDER BY id"
          if hk is None else
          f"SELECT DISTINCT ON (hk, id) id, path, container_id, hk FROM (SELECT *, {hk} AS hk "
          "FROM raw_cgroups) ORDER BY hk, id")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_cgroups AS {cg};

        CREATE OR REPLACE TEMP TABLE fc_cont AS
        SELECT DISTINCT ON (id) id AS full_id, left(id, 12) AS short_id, name, image, image_id,
               type, coalesce(privileged, false) AS privileged,
               nullif(regexp_extract(image, '{_IMG_RE}', 1), '') AS image_repository,
               coalesce(regexp_extract(image, '{_IMG_RE}', 2), '') AS image_tag,
               coalesce(regexp_extract(image, '{_IMG_RE}', 3), '') AS image_digest,
               coalesce(start_ts, first_seen_ts) AS start_ts,
               array_to_string(list_transform(coalesce(mounts, []), lambda m: concat_ws(':',
                   m.source, m.dest, m.mode, CASE WHEN m.rw THEN 'true' ELSE 'false' END,
                   m.propagation)), ',') AS mounts_text,
               coalesce(mounts, []) AS mount_list,
               labels AS label_map,
               array_to_string(list_transform(map_entries(coalesce(labels, MAP {{}})),
                   lambda x: x.key || ':' || x.value), ',') AS labels_text,
               coalesce(pod_name, {_ann("io.kubernetes.cri.sandbox-name")},
                        {_ann("io.kubernetes.pod.name")}) AS pod_name,
               coalesce(pod_namespace, {_ann("io.kubernetes.cri.sandbox-namespace")},
                        {_ann("io.kubernetes.pod.namespace")}) AS pod_namespace,
               coalesce(pod_uid, {_ann("io.kubernetes.cri.sandbox-uid")},
                        {_ann("io.kubernetes.pod.uid")}) AS pod_uid,
               coalesce(pod_sandbox_id, {_ann("io.kubernetes.cri.sandbox-id")}) AS sandbox_id
        FROM raw_containers ORDER BY id, first_seen_ts DESC NULLS LAST
        """
    )


def keys(con: Any) -> None:
    """Small integer keys per container: ``fc_ckey(ckey, cfull)`` (0 = the host).

    ``fc_users``, ``fc_groups`` and ``fc_cont`` get a ``ckey`` column, so the
    events view joins them on integers; ``fc_cgck(id, cfull, ckey)`` maps the cgroups
    of containers to their id (for events recorded without a ``container_id``).
    Needs :func:`build` and :func:`fcap.analyze.state.users.build`.

    Several hosts: a host process's key is ``-hk`` (its host's users and groups), and
    ``fc_cgck`` has the cgroup's host index ``hk``.
    """
    hk = hosts.index(con)
    host_key = "0" if hk is None else "-" + hosts.index(con, "u.host")
    gkey = "0" if hk is None else "-" + hosts.index(con, "g.host")
    cgk = "" if hk is None else ", g.hk"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_ckey AS
        SELECT CAST(row_number() OVER (ORDER BY cfull) AS INTEGER) AS ckey, cfull
        FROM (SELECT DISTINCT CAST(container_id AS VARCHAR) AS cfull FROM raw_events
              WHERE container_id IS NOT NULL
              UNION SELECT container_id FROM fc_cgroups WHERE container_id IS NOT NULL);
        CREATE OR REPLACE TEMP TABLE fc_cgck AS
        SELECT g.id, g.container_id AS cfull, k.ckey{cgk}
        FROM fc_cgroups g JOIN fc_ckey k ON k.cfull = g.container_id;
        CREATE OR REPLACE TEMP TABLE fc_users AS
        SELECT u.*, CASE WHEN u.cid = '' THEN {host_key} ELSE k.ckey END AS ckey
        FROM fc_users u LEFT JOIN fc_ckey k ON k.cfull = u.cid;
        CREATE OR REPLACE TEMP TABLE fc_groups AS
        SELECT g.*, CASE WHEN g.cid = '' THEN {gkey} ELSE k.ckey END AS ckey
        FROM fc_groups g LEFT JOIN fc_ckey k ON k.cfull = g.cid;
        CREATE OR REPLACE TEMP TABLE fc_cont AS
        SELECT c.*, k.ckey FROM fc_cont c LEFT JOIN fc_ckey k ON k.cfull = c.full_id;
        """
    )
