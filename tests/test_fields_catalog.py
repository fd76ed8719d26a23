"""The field catalog: every field resolves, its SQL runs on the events view, errors help."""

from __future__ import annotations

import re

import pytest
from fcap.analyze import enrich
from fcap.analyze.fields import catalog
from fcap.analyze.fields.catalog import FIELDS, UnknownFieldError, lookup
from fcap.analyze.fields.types import ArgKind, FieldType, Status
from fields_fixture import Raw, build

_SAMPLE_ARG = {
    ArgKind.INDEX: "1", ArgKind.KEY: "flags", ArgKind.INDEX_OR_KEY: "0",
    ArgKind.OPTIONAL_INDEX: "2", ArgKind.OPTIONAL_KEY: "HOME",
}


def _con():
    r = Raw()
    r.add("processes", pid=1, ppid=0, comm="systemd", exe="/sbin/init", argv=["/sbin/init"],
          env=["HOME=/", "PATH=/bin"])
    r.ev("openat", 1, res=3, ppid=0, a2=0, path="/etc/hosts", fd=3)
    r.ev("connect", 1, res=0, ppid=0, fd=3, a0=3, sock_family=2, laddr="1.1.1.1", lport=1,
         raddr="2.2.2.2", rport=2)
    return build(r)


def test_every_field_resolves_and_its_sql_runs() -> None:
    con = _con()
    for d in FIELDS:
        forms = []
        if d.arg in (ArgKind.NONE, ArgKind.OPTIONAL_INDEX, ArgKind.OPTIONAL_KEY):
            forms.append(None)
        if d.arg is not ArgKind.NONE:
            forms.append(_SAMPLE_ARG[d.arg])
        for arg in forms:
            ref = lookup(d.name, arg)
            con.execute(f"SELECT {ref.sql} FROM events e").fetchall()
            if d.status is Status.UNSUPPORTED:
                assert ref.note and ref.note.startswith("not supported")


def test_columns_exist_in_the_view() -> None:
    cols = set(enrich.view_columns())
    con = _con()
    actual = {r[0] for r in con.execute("DESCRIBE events").fetchall()}
    assert cols == actual
    for d in FIELDS:
        if d.column and d.status is not Status.UNSUPPORTED:
            assert d.column in cols, d.name


def test_names_and_arguments() -> None:
    assert lookup("evt.arg.flags").name == "evt.arg[flags]"
    assert lookup("evt.arg", "flags").sql == lookup("evt.arg.flags").sql
    assert lookup("proc.aname", "3").sql == "e.proc_anames[4]"
    any_ = lookup("proc.aname")
    assert any_.multi and any_.type is FieldType.STRING
    assert lookup("fd.ip").multi and lookup("fd.net").type is FieldType.IPNET
    assert lookup("proc.name").sql == "e.proc_name"


def test_unknown_fields_suggest() -> None:
    with pytest.raises(UnknownFieldError) as err:
        lookup("proc.nmae")
    assert err.value.suggestions[0] == "proc.name"
    assert "did you mean proc.name?" in str(err.value)
    with pytest.raises(UnknownFieldError) as err:
        lookup("evt.arg.flag")
    assert "evt.arg.flags" in err.value.suggestions
    with pytest.raises(UnknownFieldError, match="needs an argument"):
        lookup("evt.arg")
    with pytest.raises(UnknownFieldError, match="does not take an argument"):
        lookup("proc.name", "1")
    with pytest.raises(UnknownFieldError, match="numeric index"):
        lookup("proc.aname", "x")


@pytest.mark.shared
def test_every_field_the_upstream_rules_use(shared_dir) -> None:
    text = (shared_dir / "reference" / "falco-fields-usage.txt").read_text()
    section = text.split("## Field usage, all files")[1].split("\n## ")[0]
    used = re.findall(r"^  ([a-z0-9_.]+(?:\[[^\]]*\])?)\s+\d+", section, re.M)
    assert len(used) >= 110
    unresolved, unsupported = [], []
    for f in used:
        m = re.fullmatch(r"([^\[]+)(?:\[(.*)\])?", f)
        assert m
        name, arg = m.group(1), m.group(2)
        if name == "container.info":  # removed from Falco (used by old rules only)
            continue
        try:
            ref = lookup(name, arg)
        except UnknownFieldError:
            unresolved.append(f)
            continue
        if ref.note and ref.note.startswith("not supported"):
            unsupported.append(f)
    assert unresolved == []
    # what the capture cannot hold (executable inode times); see docs/fields.md
    assert set(unsupported) <= {
        "proc.exe_ino.ctime", "proc.exe_ino.mtime", "proc.exe_ino.ctime_duration_proc_start",
    }


def test_catalog_module_exports() -> None:
    assert catalog.field("proc.name").column == "proc_name"
    assert len({d.name for d in FIELDS}) == len(FIELDS)
