/* fcap kernel/userspace ABI: the ring-buffer record and the per-syscall table.
 *
 * This header is the contract between bpf/recorder.c and capture/decode.py
 * (numpy dtypes); tests/test_bpf_layout.py compiles it with gcc and checks
 * every offset and size against the Python side. Change both together and
 * bump FCAP_ABI_VERSION.
 *
 * A ring-buffer record is a fixed header (struct fcap_event) followed by a
 * variable data area holding the strings named by slen[], in slot order,
 * back to back. slen[i] == 0 means "absent". String slots end with their NUL
 * (the decoder drops it); the argv slot is argv joined by NULs (each argument
 * NUL-terminated); uaddr and data are raw bytes. The record is padded to a
 * multiple of 8 bytes.
 */
#ifndef FCAP_EVENT_H
#define FCAP_EVENT_H

#define FCAP_ABI_VERSION 2  /* 2: capability sets (cap_*) added, header 256 -> 272 bytes */
#define FCAP_MAGIC 0xFCA90002u /* first word of every record; low half = ABI version */

/* record kinds */
#define FCAP_K_SYSCALL 0   /* a syscall exit */
#define FCAP_K_CHILD 1     /* child side of fork/vfork/clone/clone3 (res 0) */
#define FCAP_K_EXEC 2      /* successful execve/execveat exit (new image) */
#define FCAP_K_PROCEXIT 3  /* sched_process_exit */

/* string/data slots */
#define FCAP_S_PATH 0   /* first path argument as passed */
#define FCAP_S_PATH2 1  /* second path argument as passed */
#define FCAP_S_DIR1 2   /* directory the first path is relative to (cwd or dirfd) */
#define FCAP_S_DIR2 3   /* directory the second path is relative to */
#define FCAP_S_CWD 4    /* cwd after chdir/fchdir/exec */
#define FCAP_S_EXE 5    /* exec: path of the new image (mm->exe_file) */
#define FCAP_S_ARGV 6   /* exec: argv, NUL-separated */
#define FCAP_S_UADDR 7  /* user sockaddr (connect/bind/sendto/recvfrom/msghdr) */
#define FCAP_S_DATA 8   /* payload (snaplen) */
#define FCAP_S_UNIX 9   /* AF_UNIX path bound to the socket (kernel side) */
#define FCAP_NSLOTS 10

/* fcap_event.dflags */
#define FCAP_D_DIR1_CWD 1   /* DIR1 is the cwd (AT_FDCWD) */
#define FCAP_D_DIR2_CWD 2
#define FCAP_D_TRUNC 4      /* some string was truncated */
#define FCAP_D_NOSTATE 8    /* entry args were not seen (a0..a5 unknown) */

struct fcap_event {
    __u32 magic;
    __u16 kind;
    __u16 nr;          /* syscall number (x86_64) */
    __u64 ts;          /* bpf_ktime_get_boot_ns() */
    __u64 cgroup_id;
    __s64 res;
    __u64 args[6];
    __s64 fd;          /* subject fd, or -1 when none */
    __s64 flags_aux;
    __u32 pid, tid;
    __u32 ppid, vpid, vtid;
    __u32 uid, gid, euid, egid, loginuid;
    __u32 tty;
    __s32 sid, pgid;
    __u32 mntns, pidns, netns;
    __u16 cpu;
    __u16 sock_family; /* from the socket (kernel) */
    __u16 sock_type;
    __u16 l4proto;
    __u16 lport, rport; /* host byte order */
    __u16 dflags;
    __u16 pad0;
    __u8 laddr[16];    /* IPv4 in the first 4 bytes, or IPv6; FCAP_K_EXEC records:
                          u64 inode number and u64 ctime (ns since the epoch) of the
                          new image's executable (mm->exe_file->f_inode), 0 = unknown */
    __u8 raddr[16];    /* FCAP_K_EXEC records: u64 mtime of the executable (ns) */
    char comm[16];
    __u16 slen[FCAP_NSLOTS];
    __u16 pad1[2];
    /* the task's capability sets (cred->cap_*: kernel_cap_t, bit n = capability n) */
    __u64 cap_permitted;
    __u64 cap_inheritable;
    __u64 cap_effective;
}; /* 272 bytes */

/* per-syscall behaviour, indexed by syscall number (array map "sysdesc") */
#define FCAP_NOARG 0xff
#define FCAP_SC_SELECTED 0x0001
#define FCAP_SC_RES_FD 0x0002      /* fd column = res when res >= 0 */
#define FCAP_SC_SOCK 0x0004        /* read socket family/type/addresses from the fd */
#define FCAP_SC_CTX 0x0008         /* credentials/namespaces/session may change: refresh */
#define FCAP_SC_CWD_AFTER 0x0010   /* read the cwd at exit (chdir/fchdir) */
#define FCAP_SC_EXEC 0x0020
#define FCAP_SC_CLONE 0x0040
#define FCAP_SC_P1_RAW 0x0080      /* path is not resolved (symlink target, memfd name) */
#define FCAP_SC_P2_RAW 0x0100
#define FCAP_SC_ADDR_MSGHDR 0x0200 /* addr_arg points to a struct msghdr */
#define FCAP_SC_ADDRLEN_PTR 0x0400 /* addrlen_arg is a pointer to the length */
#define FCAP_SC_AUX_U64 0x0800     /* flags_aux = *(u64 *)args[aux_arg] */
#define FCAP_SC_DATA 0x1000        /* payload at data_arg, length min(res, snaplen) */
#define FCAP_SC_ADDR_OUT 0x2000    /* the sockaddr is an output (accept, recvfrom, recvmsg):
                                      read only on success; an input one (connect, bind,
                                      sendto, sendmsg) is read whatever the result */
#define FCAP_SC_FDPAIR 0x4000      /* pipe/pipe2/socketpair: aux_arg points to the int[2] the
                                      kernel filled; on success fd = [0] and flags_aux =
                                      [1] | (inode of [0] & 0xffffffff) << 32 (0: unknown) */

struct fcap_sc_desc {
    __u16 flags;
    __u8 path_arg, dirfd_arg, path2_arg, dirfd2_arg;
    __u8 fd_arg, addr_arg, addrlen_arg, data_arg, aux_arg;
    __u8 pad[5];
};

/* recorder configuration (array map "config", one element) */
#define FCAP_F_PID 1        /* only tgids in map "tracked" (with descendants) */
#define FCAP_F_COMM 2       /* only comms in map "comms" */
#define FCAP_F_XCOMM 4      /* not comms in map "xcomms" */
#define FCAP_F_CGROUP 8     /* only cgroup ids in map "cgroups" */
#define FCAP_F_PROCEXIT 16  /* emit procexit rows */

struct fcap_config {
    __u32 self_tgid;
    __u32 filters;
    __u32 snaplen;
    __u32 pad;
    __u64 refresh_ns;   /* re-read the cached task context after this long */
};

#endif
