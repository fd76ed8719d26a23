"""A tiny field catalog for compiler tests (independent of the real catalog)."""

from __future__ import annotations

from fcap.analyze.fields.types import FieldRef, FieldType

_FIELDS = {
    "evt.type": ("e.evt_type", FieldType.STRING, False),
    "evt.num": ("e.evt_num", FieldType.UINT, False),
    "evt.time": ("e.ts", FieldType.ABSTIME, False),
    "evt.dir": ("'<'", FieldType.STRING, False),
    "proc.name": ("e.proc_name", FieldType.STRING, False),
    "proc.cmdline": ("e.proc_cmdline", FieldType.STRING, False),
    "proc.pid": ("e.proc_pid", FieldType.INT, False),
    "proc.aname": ("e.proc_anames", FieldType.STRING, True),
    "fd.name": ("e.fd_name", FieldType.STRING, False),
    "fd.sip": ("e.fd_sip", FieldType.IPADDR, False),
    "fd.snet": ("e.fd_sip", FieldType.IPNET, False),
    "fd.num": ("e.fd_num", FieldType.INT, False),
    "fd.ip": ("list_filter([e.fd_cip, e.fd_sip], lambda x: x IS NOT NULL)", FieldType.IPADDR, True),
    "evt.buffer": ("e.buf", FieldType.BYTES, False),
    "user.uid": ("e.user_uid", FieldType.UINT, False),
    "proc.is_exe_writable": ("e.exe_writable", FieldType.BOOL, False),
    "container.id": ("e.container_id", FieldType.STRING, False),
    "container.name": ("e.container_name", FieldType.STRING, False),
    "container.image.repository": ("e.image_repo", FieldType.STRING, False),
    "container.image.tag": ("e.image_tag", FieldType.STRING, False),
    "k8s.pod.name": ("e.pod_name", FieldType.STRING, False),
    "k8s.ns.name": ("e.ns_name", FieldType.STRING, False),
    "ka.user.name": ("e.ka_user", FieldType.STRING, False),  # a k8s-audit-like field
}


class UnknownField(Exception):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        super().__init__(f"unknown field '{name}'")
        self.message = f"unknown field '{name}'"
        self.suggestions = suggestions


class FakeCatalog:
    """lookup(name, arg) -> FieldRef, like fcap.analyze.fields.catalog."""

    def lookup(self, name: str, arg: str | None = None) -> FieldRef:
        if name == "proc.aname" and arg is not None:
            return FieldRef(f"proc.aname[{arg}]", f"e.proc_anames[{int(arg)}]", FieldType.STRING)
        if name not in _FIELDS or arg is not None:
            near = [f for f in _FIELDS if f.split(".")[0] == name.split(".")[0]][:1]
            raise UnknownField(name if arg is None else f"{name}[{arg}]", near)
        sql, t, multi = _FIELDS[name]
        return FieldRef(name, sql, t, multi)


CATALOG = FakeCatalog()
