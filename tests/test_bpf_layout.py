"""The numpy dtypes of the Python side match bpf/fcap_event.h (compiled with gcc)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fcap.capture import decode, syscalls
from fcap.capture.probe import CONFIG_DTYPE
from fcap.capture.ringbuf import FCAP_MAGIC

BPF = Path(__file__).resolve().parents[1] / "bpf"

STRUCTS = {
    "fcap_event": decode.EVENT_DTYPE,
    "fcap_sc_desc": syscalls.SC_DESC_DTYPE,
    "fcap_config": CONFIG_DTYPE,
}
CONSTANTS = {
    "FCAP_MAGIC": FCAP_MAGIC, "FCAP_ABI_VERSION": FCAP_MAGIC & 0xFFFF,
    "FCAP_K_SYSCALL": decode.K_SYSCALL, "FCAP_K_CHILD": decode.K_CHILD,
    "FCAP_K_EXEC": decode.K_EXEC, "FCAP_K_PROCEXIT": decode.K_PROCEXIT,
    "FCAP_S_PATH": decode.S_PATH, "FCAP_S_PATH2": decode.S_PATH2, "FCAP_S_DIR1": decode.S_DIR1,
    "FCAP_S_DIR2": decode.S_DIR2, "FCAP_S_CWD": decode.S_CWD, "FCAP_S_EXE": decode.S_EXE,
    "FCAP_S_ARGV": decode.S_ARGV, "FCAP_S_UADDR": decode.S_UADDR, "FCAP_S_DATA": decode.S_DATA,
    "FCAP_S_UNIX": decode.S_UNIX, "FCAP_NSLOTS": decode.NSLOTS,
    "FCAP_D_DIR1_CWD": decode.D_DIR1_CWD, "FCAP_D_DIR2_CWD": decode.D_DIR2_CWD,
    "FCAP_D_TRUNC": decode.D_TRUNC, "FCAP_D_NOSTATE": decode.D_NOSTATE,
    "FCAP_NOARG": syscalls.NOARG,
    "FCAP_SC_SELECTED": syscalls.SELECTED, "FCAP_SC_RES_FD": syscalls.RES_FD,
    "FCAP_SC_SOCK": syscalls.SOCK, "FCAP_SC_CTX": syscalls.CTX,
    "FCAP_SC_CWD_AFTER": syscalls.CWD_AFTER, "FCAP_SC_EXEC": syscalls.EXEC,
    "FCAP_SC_CLONE": syscalls.CLONE, "FCAP_SC_P1_RAW": syscalls.P1_RAW,
    "FCAP_SC_P2_RAW": syscalls.P2_RAW, "FCAP_SC_ADDR_MSGHDR": syscalls.ADDR_MSGHDR,
    "FCAP_SC_ADDRLEN_PTR": syscalls.ADDRLEN_PTR, "FCAP_SC_AUX_U64": syscalls.AUX_U64,
    "FCAP_SC_DATA": syscalls.DATA, "FCAP_SC_ADDR_OUT": syscalls.ADDR_OUT,
    "FCAP_SC_FDPAIR": syscalls.FDPAIR,
}  # fmt: skip


def _program(structs: dict[str, np.dtype]) -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>",
             '#include "fcap_event.h"', "int main(void) {"]  # fmt: skip
    for name, dt in structs.items():
        lines.append(f'printf("sizeof {name} %zu\\n", sizeof(struct {name}));')
        for field in dt.names:
            lines.append(f'printf("offsetof {name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
            lines.append(f'printf("sizeof {name}.{field} %zu\\n", sizeof(((struct {name} *)0)->{field}));')
    for c in CONSTANTS:
        lines.append(f'printf("const {c} %llu\\n", (unsigned long long)({c}));')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict[tuple[str, str], int]:
    """(kind, key) -> value, kind in sizeof / offsetof / const, as gcc sees the header."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed")
    tmp = tmp_path_factory.mktemp("layout")
    src = tmp / "layout.c"
    src.write_text(_program(STRUCTS))
    exe = tmp / "layout"
    subprocess.run(["gcc", "-Wall", "-I", str(BPF), "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        kind, key, val = line.split(" ")
        table[(kind, key)] = int(val)
    return table


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_matches_header(layout, name: str) -> None:
    dt = STRUCTS[name]
    assert layout[("sizeof", name)] == dt.itemsize, f"sizeof(struct {name})"
    for field in dt.names:
        ftype, off = dt.fields[field][:2]
        assert layout[("offsetof", f"{name}.{field}")] == off, f"offsetof({name}, {field})"
        assert layout[("sizeof", f"{name}.{field}")] == ftype.itemsize, f"sizeof {name}.{field}"


def test_every_header_field_is_mirrored(layout) -> None:
    # the Python dtypes cover each struct completely (no gap, no overlap)
    for name, dt in STRUCTS.items():
        spans = sorted((dt.fields[f][1], dt.fields[f][0].itemsize) for f in dt.names)
        pos = 0
        for off, size in spans:
            assert off == pos, f"{name}: gap or overlap at {pos}"
            pos += size
        assert pos == layout[("sizeof", name)]


def test_constants_match_header(layout) -> None:
    for name, value in CONSTANTS.items():
        assert layout[("const", name)] == value, name


def test_ringbuf_record_header_size() -> None:
    from fcap.capture.ringbuf import HDR

    assert HDR == 8 and decode.EVENT_DTYPE.itemsize % 8 == 0
