"""The BTF reader: synthetic blobs built here, plus the running kernel's BTF."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fcap.capture import btf


class Blob:
    """Build a BTF blob: strings + type records (kinds per include/uapi/linux/btf.h)."""

    def __init__(self) -> None:
        self.strings = b"\0"
        self.types = b""
        self.n = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, vlen: int, size_or_type: int, extra: bytes = b"",
            kflag: int = 0) -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.s(name), info, size_or_type) + extra
        self.n += 1
        return self.n

    def int_(self, name: str, size: int) -> int:
        return self.add(name, btf.INT, 0, size, struct.pack("<I", size * 8))

    def struct_(self, name: str, size: int, members: list[tuple[str, int, int]],
                kind: int = btf.STRUCT, kflag: int = 0) -> int:
        extra = b"".join(struct.pack("<III", self.s(m), t, off) for m, t, off in members)
        return self.add(name, kind, len(members), size, extra, kflag)

    def bytes(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, len(self.types),
                          len(self.types), len(self.strings))
        return hdr + self.types + self.strings


def _sample() -> bytes:
    b = Blob()
    u32 = b.int_("unsigned int", 4)  # 1
    u64 = b.int_("long long unsigned int", 8)  # 2
    b.add("u32_t", btf.TYPEDEF, 0, u32)  # 3 typedef
    const_u64 = b.add("", btf.CONST, 0, u64)  # 4
    ptr = b.add("", btf.PTR, 0, 0)  # 5 void *
    arr = b.add("", btf.ARRAY, 0, 0, struct.pack("<III", u32, u32, 4))  # 6 u32[4]
    b.add("f", btf.FUNC_PROTO, 2, u32, struct.pack("<IIII", 0, u32, 0, u64))  # 7
    b.add("e", btf.ENUM, 2, 4, struct.pack("<IiIi", b.s("A"), 0, b.s("B"), 1))  # 8
    inner = b.struct_("", 8, [("x", u64, 0), ("y", u32, 0)], kind=btf.UNION)  # 9 anon union
    inner2 = b.struct_("", 16, [("deep", 3, 0), ("deeper", const_u64, 64)])  # 10 anon struct
    b.struct_("thing", 64, [("a", 3, 0), ("", inner, 64), ("p", ptr, 128), ("arr", arr, 192),
                            ("", inner2, 320)])  # 11
    b.struct_("bits", 4, [("lo", u32, (3 << 24) | 0), ("hi", u32, (5 << 24) | 3)], kflag=1)  # 12
    b.struct_("holder", 72, [("t", 11, 0), ("tail", u32, 512)])  # 13
    return b.bytes()


def test_members_through_anonymous_unions_and_structs() -> None:
    t = btf.BTF(_sample())
    assert t.member("thing.a") == (0, 4, 3)
    assert t.offset("thing.x") == 8 and t.offset("thing.y") == 8
    assert t.offset("thing.p") == 16
    assert t.member("thing.arr")[:2] == (24, 16)
    assert t.offset("thing.deep") == 40 and t.offset("thing.deeper") == 48
    assert t.member("thing.deeper")[1] == 8  # through const
    assert t.offset("holder.t.deeper") == 48 and t.offset("holder.tail") == 64
    assert t.sizeof(t.struct_id("thing")) == 64


def test_errors_are_prerequisite_errors() -> None:
    t = btf.BTF(_sample())
    with pytest.raises(btf.BTFError, match=r"no member thing\.nope"):
        t.offset("thing.nope")
    with pytest.raises(btf.BTFError, match="no struct missing"):
        t.offset("missing.a")
    with pytest.raises(btf.BTFError, match="bitfield"):
        t.offset("bits.hi")
    with pytest.raises(btf.BTFError, match="not a BTF blob"):
        btf.BTF(b"\0" * 32)


def test_kernel_offsets_cached(tmp_path, monkeypatch) -> None:
    blob = tmp_path / "vmlinux"
    blob.write_bytes(_sample())
    monkeypatch.setenv("FCAP_CACHE_DIR", str(tmp_path / "cache"))
    out = btf.kernel_offsets({"OFF_y": "thing.y"}, {"SZ_thing": "thing"}, path=blob)
    assert out == {"OFF_y": 8, "SZ_thing": 64}
    cached = list((tmp_path / "cache").glob("btf-offsets-*.json"))
    assert len(cached) == 1
    # a different blob (another kernel build) gets its own entry
    blob.write_bytes(_sample() + b"\0")
    btf.kernel_offsets({"OFF_y": "thing.y"}, {}, path=blob)
    assert len(list((tmp_path / "cache").glob("btf-offsets-*.json"))) == 2


def test_missing_btf_is_a_prerequisite_error(tmp_path) -> None:
    from fcap.errors import PrerequisiteError

    with pytest.raises(PrerequisiteError, match="CONFIG_DEBUG_INFO_BTF"):
        btf.kernel_offsets({}, {}, path=tmp_path / "none")


@pytest.mark.skipif(not btf.VMLINUX.exists(), reason="no kernel BTF")
def test_running_kernel_btf() -> None:
    from fcap.capture.probe import MEMBERS, SIZES

    t = btf.BTF(Path(btf.VMLINUX).read_bytes())
    # every member the recorder needs exists
    for path in MEMBERS.values():
        t.offset(path)
    # facts that hold on every x86_64 kernel
    assert t.offset("task_struct.tgid") == t.offset("task_struct.pid") + 4
    assert t.sizeof(t.struct_id(SIZES["SZ_upid"])) == 16
    assert t.member("task_struct.comm")[1] == 16
    assert t.offset("path.dentry") == 8 and t.offset("path.mnt") == 0
    assert t.offset("sock_common.skc_daddr") == 0  # first member of the addrpair
