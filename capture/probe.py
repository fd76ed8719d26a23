"""Loading the recorder's BPF program with bcc, and its control maps.

:class:`Probe` checks the prerequisites (root, bcc, headers, tracefs, BTF),
compiles ``bpf/recorder.c`` with the kernel offsets from :mod:`.btf`, fills
the syscall table, the configuration and the filter maps, and exposes the
ring buffer's map fd for :class:`fcap.capture.ringbuf.RingBuffer`. Every
missing prerequisite raises :class:`fcap.errors.PrerequisiteError` with the
cause and the fix on one line (exit code 2).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fcap.capture import btf
from fcap.capture.syscalls import PROCEXIT, desc_table, entry_syscalls

from fcap.errors import PrerequisiteError

BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"

#: macro -> BTF member path (offsets the C code uses)
MEMBERS: dict[str, str] = {
    "OFF_task_real_parent": "task_struct.real_parent",
    "OFF_task_tgid": "task_struct.tgid",
    "OFF_task_cred": "task_struct.cred",
    "OFF_task_loginuid": "task_struct.loginuid",
    "OFF_task_signal": "task_struct.signal",
    "OFF_task_thread_pid": "task_struct.thread_pid",
    "OFF_task_nsproxy": "task_struct.nsproxy",
    "OFF_task_fs": "task_struct.fs",
    "OFF_task_files": "task_struct.files",
    "OFF_task_mm": "task_struct.mm",
    "OFF_task_exit_code": "task_struct.exit_code",
    "OFF_cred_uid": "cred.uid",
    "OFF_cred_gid": "cred.gid",
    "OFF_cred_euid": "cred.euid",
    "OFF_cred_egid": "cred.egid",
    "OFF_cred_cap_permitted": "cred.cap_permitted",
    "OFF_cred_cap_inheritable": "cred.cap_inheritable",
    "OFF_cred_cap_effective": "cred.cap_effective",
    "OFF_signal_tty": "signal_struct.tty",
    "OFF_signal_pids": "signal_struct.pids",
    "OFF_tty_index": "tty_struct.index",
    "OFF_tty_driver": "tty_struct.driver",
    "OFF_drv_major": "tty_driver.major",
    "OFF_drv_minor_start": "tty_driver.minor_start",
    "OFF_pid_level": "pid.level",
    "OFF_pid_numbers": "pid.numbers",
    "OFF_upid_nr": "upid.nr",
    "OFF_upid_ns": "upid.ns",
    "OFF_pidns_ns": "pid_namespace.ns",
    "OFF_ns_inum": "ns_common.inum",
    "OFF_nsproxy_mnt_ns": "nsproxy.mnt_ns",
    "OFF_nsproxy_net_ns": "nsproxy.net_ns",
    "OFF_mntns_ns": "mnt_namespace.ns",
    "OFF_net_ns": "net.ns",
    "OFF_fs_pwd": "fs_struct.pwd",
    "OFF_path_mnt": "path.mnt",
    "OFF_path_dentry": "path.dentry",
    "OFF_dentry_d_parent": "dentry.d_parent",
    "OFF_dentry_d_name": "dentry.d_name",
    "OFF_qstr_name": "qstr.name",
    "OFF_qstr_len": "qstr.len",
    "OFF_mount_mnt": "mount.mnt",
    "OFF_mount_mnt_parent": "mount.mnt_parent",
    "OFF_mount_mnt_mountpoint": "mount.mnt_mountpoint",
    "OFF_vfsmount_mnt_root": "vfsmount.mnt_root",
    "OFF_files_fdt": "files_struct.fdt",
    "OFF_fdt_fd": "fdtable.fd",
    "OFF_fdt_max_fds": "fdtable.max_fds",
    "OFF_file_f_path": "file.f_path",
    "OFF_file_private_data": "file.private_data",
    "OFF_file_f_inode": "file.f_inode",
    "OFF_inode_i_ino": "inode.i_ino",
    "OFF_socket_sk": "socket.sk",
    "OFF_skc_family": "sock_common.skc_family",
    "OFF_skc_num": "sock_common.skc_num",
    "OFF_skc_dport": "sock_common.skc_dport",
    "OFF_skc_rcv_saddr": "sock_common.skc_rcv_saddr",
    "OFF_skc_daddr": "sock_common.skc_daddr",
    "OFF_skc_v6_rcv_saddr": "sock_common.skc_v6_rcv_saddr",
    "OFF_skc_v6_daddr": "sock_common.skc_v6_daddr",
    "OFF_sk_type": "sock.sk_type",
    "OFF_sk_protocol": "sock.sk_protocol",
    "OFF_mm_arg_start": "mm_struct.arg_start",
    "OFF_mm_arg_end": "mm_struct.arg_end",
    "OFF_mm_exe_file": "mm_struct.exe_file",
    "OFF_unix_sock_addr": "unix_sock.addr",
    "OFF_unix_address_name": "unix_address.name",
    "OFF_task_pid": "task_struct.pid",
    "OFF_task_comm": "task_struct.comm",
    "OFF_task_cgroups": "task_struct.cgroups",
    "OFF_css_set_dfl_cgrp": "css_set.dfl_cgrp",
    "OFF_cgroup_kn": "cgroup.kn",
    "OFF_kernfs_node_id": "kernfs_node.id",
    # x86_64 syscall number and argument registers in the saved user registers
    "OFF_regs_orig_ax": "pt_regs.orig_ax",
    "OFF_regs_di": "pt_regs.di",
    "OFF_regs_si": "pt_regs.si",
    "OFF_regs_dx": "pt_regs.dx",
    "OFF_regs_r10": "pt_regs.r10",
    "OFF_regs_r8": "pt_regs.r8",
    "OFF_regs_r9": "pt_regs.r9",
}
SIZES: dict[str, str] = {"SZ_upid": "upid"}

#: the executable's inode times (exec records): member paths of the seconds and
#: nanoseconds of ctime and mtime, by kernel generation; the first one the BTF
#: has wins. 6.11+: i_ctime_sec/i_ctime_nsec; 6.6-6.10: __i_ctime (and from 6.7
#: __i_mtime) timespec64; older: i_ctime/i_mtime timespec64.
INODE_TIMES: tuple[dict[str, str], ...] = (
    {"OFF_inode_ctime_sec": "inode.i_ctime_sec", "OFF_inode_ctime_nsec": "inode.i_ctime_nsec",
     "OFF_inode_mtime_sec": "inode.i_mtime_sec", "OFF_inode_mtime_nsec": "inode.i_mtime_nsec"},
    {"OFF_inode_ctime_sec": "inode.__i_ctime.tv_sec",
     "OFF_inode_ctime_nsec": "inode.__i_ctime.tv_nsec",
     "OFF_inode_mtime_sec": "inode.__i_mtime.tv_sec",
     "OFF_inode_mtime_nsec": "inode.__i_mtime.tv_nsec"},
    {"OFF_inode_ctime_sec": "inode.__i_ctime.tv_sec",
     "OFF_inode_ctime_nsec": "inode.__i_ctime.tv_nsec",
     "OFF_inode_mtime_sec": "inode.i_mtime.tv_sec", "OFF_inode_mtime_nsec": "inode.i_mtime.tv_nsec"},
    {"OFF_inode_ctime_sec": "inode.i_ctime.tv_sec", "OFF_inode_ctime_nsec": "inode.i_ctime.tv_nsec",
     "OFF_inode_mtime_sec": "inode.i_mtime.tv_sec", "OFF_inode_mtime_nsec": "inode.i_mtime.tv_nsec"},
)  # fmt: skip


def inode_time_offsets() -> dict[str, int]:
    """OFF_inode_{c,m}time_{sec,nsec} from the kernel's BTF, or -1 each when it has none
    of the known layouts (exec rows then carry no executable inode times)."""
    for members in INODE_TIMES:
        try:
            return btf.kernel_offsets(members, {})
        except btf.BTFError:
            continue
    return dict.fromkeys(INODE_TIMES[0], -1)

# fcap_config.filters bits (bpf/fcap_event.h)
F_PID, F_COMM, F_XCOMM, F_CGROUP, F_PROCEXIT = 1, 2, 4, 8, 16
CONFIG_DTYPE = np.dtype(
    [("self_tgid", "<u4"), ("filters", "<u4"), ("snaplen", "<u4"), ("pad", "<u4"),
     ("refresh_ns", "<u8")]
)  # fmt: skip


def check_prerequisites() -> None:
    """Raise PrerequisiteError naming the first missing prerequisite and its fix."""
    if os.geteuid() != 0:
        raise PrerequisiteError("recording needs root (run fcap record as root, e.g. with sudo)")
    try:
        import bcc  # noqa: F401
    except ImportError:
        raise PrerequisiteError(
            "bcc is not importable (install Debian's python3-bpfcc and link it into the venv: "
            "scripts/setup.sh)"
        ) from None
    rel = os.uname().release
    if not Path(f"/lib/modules/{rel}/build").exists():
        raise PrerequisiteError(
            f"no kernel headers at /lib/modules/{rel}/build (install linux-headers-{rel}, or "
            "run scripts/setup.sh to link the distro's generic headers)"
        )
    if not Path("/sys/kernel/tracing/events/raw_syscalls").is_dir():
        raise PrerequisiteError(
            "tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs nodev "
            "/sys/kernel/tracing, or run scripts/setup.sh)"
        )
    if not btf.VMLINUX.exists():
        raise PrerequisiteError(
            "/sys/kernel/btf/vmlinux is missing: the recorder needs a kernel with "
            "CONFIG_DEBUG_INFO_BTF=y"
        )


@dataclass(frozen=True)
class ProbeConfig:
    """What the kernel side records."""

    syscalls: tuple[str, ...]
    snaplen: int = 0
    pids: tuple[int, ...] = ()
    comms: tuple[str, ...] = ()
    exclude_comms: tuple[str, ...] = ()
    cgroup_ids: tuple[int, ...] | None = None  # None = no container filter
    ring_mb: int = 64  # in total, over all rings
    rings: int = 0  # 0 = one per CPU, at most 16
    refresh_ms: int = 200
    extra_cflags: tuple[str, ...] = field(default=())


def ring_source(text: str, nrings: int) -> str:
    """recorder.c with the ring declarations and the per-CPU output switch filled in."""
    decl = "\n".join(f"BPF_RINGBUF_OUTPUT(events{i}, RB_PAGES);" for i in range(nrings))
    cases = " ".join(
        f"case {i}: r = events{i}.ringbuf_output(&s->ev, size, BPF_RB_NO_WAKEUP); break;"
        for i in range(nrings)
    )
    return text.replace("/*@RINGS_DECL@*/", decl).replace(
        "/*@RINGS_OUTPUT@*/", f"switch (ring) {{ {cases} default: break; }}"
    )


def _comm_key(name: str) -> bytes:
    return name.encode()[:15].ljust(16, b"\0")


class Probe:
    """The loaded BPF program (bcc) with its maps; call :meth:`close` to detach."""

    def __init__(self, cfg: ProbeConfig) -> None:
        check_prerequisites()
        from bcc import BPF

        offs = btf.kernel_offsets(MEMBERS, SIZES) | inode_time_offsets()
        nrings = cfg.rings or min(os.cpu_count() or 1, 16)
        per_ring = max(cfg.ring_mb * 256 // nrings, 256)  # 4 KiB pages, at least 1 MiB
        pages = 1 << (per_ring.bit_length() - 1)  # a power of 2
        cflags = [f"-I{BPF_DIR}", f"-DRB_PAGES={pages}", f"-DNRINGS={nrings}",
                  "-Wno-macro-redefined"]  # fmt: skip
        cflags += [f"-D{k}={v}" for k, v in offs.items()]
        cflags += list(cfg.extra_cflags)
        text = ring_source((BPF_DIR / "recorder.c").read_text(), nrings)
        try:
            self.bpf = BPF(text=text.encode(), cflags=cflags)
            # the walk is tail-called from the raw sys_exit and sched_process_exit
            # programs: a program array holds programs of one type only
            walk = self.bpf.load_func(b"fcap_walk", BPF.RAW_TRACEPOINT)
            self.bpf[b"stages"][ctypes.c_int(0)] = ctypes.c_int(walk.fd)
            for name in entry_syscalls(cfg.syscalls):
                self.bpf.attach_tracepoint(tp=f"syscalls:sys_enter_{name}".encode(),
                                           fn_name=b"fcap_enter")
        except Exception as err:  # bcc raises plain Exception on compile/load failure
            raise PrerequisiteError(
                f"the kernel refused the recorder's BPF program ({str(err).splitlines()[0]}); "
                "check dmesg and that the kernel allows BPF tracing programs"
            ) from None
        self.ring_bytes = pages * 4096
        self.nrings = nrings
        self.cfg = cfg
        self._fill(cfg)

    def _fill(self, cfg: ProbeConfig) -> None:
        b = self.bpf
        filters = F_PROCEXIT if PROCEXIT in cfg.syscalls else 0
        one = ctypes.c_uint8(1)
        if cfg.pids:
            filters |= F_PID
            for p in cfg.pids:
                b[b"tracked"][ctypes.c_uint32(p)] = one
        if cfg.comms:
            filters |= F_COMM
            m = b[b"comms"]
            for c in cfg.comms:
                m[m.Key.from_buffer_copy(_comm_key(c))] = one
        if cfg.exclude_comms:
            filters |= F_XCOMM
            m = b[b"xcomms"]
            for c in cfg.exclude_comms:
                m[m.Key.from_buffer_copy(_comm_key(c))] = one
        if cfg.cgroup_ids is not None:
            filters |= F_CGROUP
            for cg in cfg.cgroup_ids:
                b[b"cgroups"][ctypes.c_uint64(cg)] = one
        conf = np.zeros(1, CONFIG_DTYPE)
        conf[0] = (os.getpid(), filters, cfg.snaplen, 0, cfg.refresh_ms * 1_000_000)
        config = b[b"config"]
        config[ctypes.c_int(0)] = config.Leaf.from_buffer_copy(conf.tobytes())
        # the syscall table last: nothing is selected until the config (self_tgid) is set
        table = desc_table(cfg.syscalls)
        sysdesc = b[b"sysdesc"]
        for nr in np.flatnonzero(table["flags"]):
            sysdesc[ctypes.c_int(int(nr))] = sysdesc.Leaf.from_buffer_copy(table[nr].tobytes())

    def add_pids(self, pids: Iterable[int]) -> None:
        """Track more tgids (e.g. descendants that existed before recording)."""
        one = ctypes.c_uint8(1)
        for p in pids:
            self.bpf[b"tracked"][ctypes.c_uint32(p)] = one

    def tracked(self, pids: Iterable[int]) -> set[int]:
        """Which of ``pids`` (tgids) the ``--pid`` filter follows (map lookups, few pids)."""
        m = self.bpf[b"tracked"]
        out = set()
        for p in pids:
            try:
                m[ctypes.c_uint32(int(p))]
            except KeyError:
                continue
            out.add(int(p))
        return out

    @property
    def ring_fds(self) -> list[int]:
        """File descriptors of the ring buffer maps (one per CPU group)."""
        return [self.bpf[f"events{i}".encode()].map_fd for i in range(self.nrings)]

    def drops_per_cpu(self) -> list[int]:
        """Events lost in the kernel, per possible CPU."""
        vals = self.bpf[b"drops"][ctypes.c_int(0)]
        return [int(v) for v in vals]

    def close(self) -> None:
        """Detach every probe and free the maps."""
        self.bpf.cleanup()
