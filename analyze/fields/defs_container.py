"""``container.*`` and ``k8s.*`` (Falco's container plugin) and fcap's ``shell.*`` extension."""

from __future__ import annotations

from fcap.analyze.fields._mk import part, sup, unsup
from fcap.analyze.fields.types import ArgKind, FieldType

S, N, U, B, T, R = (
    FieldType.STRING, FieldType.INT, FieldType.UINT, FieldType.BOOL, FieldType.ABSTIME,
    FieldType.RELTIME,
)
C = "container"
_IK = ArgKind.INDEX_OR_KEY
_DEP = "deprecated in the container plugin, which extracts nothing for it"
_DEP_K8S = "deprecated (k8s client removed from Falco); use the k8smeta plugin"
_NOIP = "container/pod network data (CNI result, IPs) is not recorded"
_MOUNT = (
    "[n] = n-th mount; [pattern] = first mount whose source (dest for mount.source) matches "
    "the pattern as a regular expression search, as the plugin does"
)

CONTAINER_FIELDS = (
    sup("container.id", S, "container_id", "first 12 chars of the container id, or 'host'",
        source=C),
    sup("container.full_id", S, "container_full_id", "full container id ('host' on the host)",
        source=C),
    sup("container.name", S, "container_name", "container name ('host' on the host)", source=C),
    sup("container.image", S, "container_image", "image reference", source=C),
    sup("container.image.id", S, "container_image_id", "image id", source=C),
    sup("container.type", S, "container_type", "docker, containerd, cri-o, ... ('host')", source=C),
    sup("container.privileged", B, "container_privileged", "privileged container", source=C),
    sup("container.mounts", S, "container_mounts",
        "mounts as source:dest:mode:rdwr:propagation, comma separated", source=C),
    sup("container.mount", S, None, "one mount as source:dest:mode:rdwr:propagation; " + _MOUNT,
        arg=_IK, source=C),
    sup("container.mount.source", S, None, "mount source; " + _MOUNT, arg=_IK, source=C),
    sup("container.mount.dest", S, None, "mount destination; " + _MOUNT, arg=_IK, source=C),
    sup("container.mount.mode", S, None, "mount mode; " + _MOUNT, arg=_IK, source=C),
    sup("container.mount.rdwr", S, None, "'true'/'false'; " + _MOUNT, arg=_IK, source=C),
    sup("container.mount.propagation", S, None, "mount propagation; " + _MOUNT, arg=_IK, source=C),
    sup("container.image.repository", S, "container_image_repository",
        "image repository (reference without tag and digest)", source=C),
    sup("container.image.tag", S, "container_image_tag", "image tag", source=C),
    sup("container.image.digest", S, "container_image_digest", "image digest (sha256:...)",
        source=C),
    unsup("container.healthcheck", S, _DEP, source=C, deprecated=True),
    unsup("container.liveness_probe", S, _DEP, source=C, deprecated=True),
    unsup("container.readiness_probe", S, _DEP, source=C, deprecated=True),
    part("container.start_ts", T, "container_start_ts", "container start time",
         "the runtime's start time from the recorded container table (the plugin uses the pid "
         "namespace init's start time; both name the container's first process)", source=C),
    part("container.duration", R, "container_duration", "ns since container.start_ts",
         "as container.start_ts", source=C),
    unsup("container.ip", S, _NOIP, source=C),
    unsup("container.cni.json", S, _NOIP, source=C),
    unsup("container.host_pid", B, "host namespace flags are not recorded", source=C),
    unsup("container.host_network", B, "host namespace flags are not recorded", source=C),
    unsup("container.host_ipc", B, "host namespace flags are not recorded", source=C),
    sup("container.label", S, None, "container label by key", arg=ArgKind.KEY, source=C),
    sup("container.labels", S, "container_labels", "labels as key:value, comma separated",
        source=C),
    unsup("proc.is_container_healthcheck", B, _DEP, source=C, deprecated=True),
    unsup("proc.is_container_liveness_probe", B, _DEP, source=C, deprecated=True),
    unsup("proc.is_container_readiness_probe", B, _DEP, source=C, deprecated=True),
    sup("k8s.pod.name", S, "k8s_pod_name", "pod name (CRI annotation/label)", source=C),
    sup("k8s.ns.name", S, "k8s_ns_name", "pod namespace", source=C),
    sup("k8s.pod.id", S, "k8s_pod_uid", "pod uid (legacy name of k8s.pod.uid)", source=C),
    sup("k8s.pod.uid", S, "k8s_pod_uid", "pod uid", source=C),
    sup("k8s.pod.sandbox_id", S, "k8s_pod_sandbox_id", "first 12 chars of the sandbox id",
        source=C),
    sup("k8s.pod.full_sandbox_id", S, "k8s_pod_full_sandbox_id", "full sandbox id", source=C),
    part("k8s.pod.label", S, None, "pod label by key",
         "from the container's labels (CRI copies pod labels onto containers)", arg=ArgKind.KEY,
         source=C),
    part("k8s.pod.labels", S, "k8s_pod_labels", "pod labels as key:value, comma separated",
         "as k8s.pod.label", source=C),
    unsup("k8s.pod.ip", S, _NOIP, source=C),
    unsup("k8s.pod.cni.json", S, _NOIP, source=C),
    *(
        unsup(f"k8s.{kind}.{leaf}", S, _DEP_K8S, source=C, deprecated=True,
              arg=ArgKind.KEY if leaf == "label" else ArgKind.NONE)
        for kind, leaves in (
            ("rc", ("name", "id", "label", "labels")),
            ("svc", ("name", "id", "label", "labels")),
            ("ns", ("id", "label", "labels")),
            ("rs", ("name", "id", "label", "labels")),
            ("deployment", ("name", "id", "label", "labels")),
        )
        for leaf in leaves
    ),
)

SHELL_FIELDS = (
    sup("shell.line", S, "shell_line", "fcap extension: the line typed (evt.type = shell_line)",
        source="fcap"),
    sup("shell.session", N, "shell_session",
        "fcap extension: session id (proc.sid) of the shell that read the line", source="fcap"),
    sup("shell.tty", U, "shell_tty", "fcap extension: controlling tty of that shell", source="fcap"),
    sup("shell.withheld", B, "shell_withheld",
        "fcap extension: input withheld because echo was off (evt.type = shell_line_withheld)",
        source="fcap"),
)
