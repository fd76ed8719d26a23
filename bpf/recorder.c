/* fcap recorder: syscall exits, process lifecycle, to one BPF ring buffer.
 *
 * Compiled by bcc at record time (capture/probe.py). Kernel struct members
 * are never taken from headers: every OFF_* / SZ_* macro is a byte offset or
 * size read from the running kernel's BTF by capture/btf.py, and kernel
 * memory is read at those offsets, with direct loads through BTF pointers
 * (current task, its saved registers) or bpf_probe_read_kernel().
 *
 * Model (exit-only): one raw-tracepoint program on sys_exit takes the
 * syscall number and arguments from the task's saved user registers and
 * emits one record with them, the result and everything decoded (paths,
 * directories, addresses, argv); there is no sys_enter program. Only the
 * syscalls whose argument registers do not survive to the exit (execve,
 * execveat, rt_sigreturn) keep them at entry (fcap_enter, attached by
 * capture/probe.py to their own syscalls:sys_enter_* tracepoints). The
 * syscall selection, the filters and the per-syscall behaviour are data in
 * maps filled by userspace (struct fcap_sc_desc), so this file has no
 * per-syscall code. Records are submitted without wakeup; userspace drains
 * the ring on a timer. Failed submissions are counted per CPU in "drops".
 */
#include "fcap_event.h"

#ifndef RB_PAGES
#define RB_PAGES 8192
#endif
#define DATA_MAX 16384          /* data area: strings start below this offset */
#define DATA_MASK (DATA_MAX - 1)
#define STR_MAX 4096            /* largest single string/blob */
#define STR_MASK (STR_MAX - 1)
#define WALK_END 4096           /* dentry walk writes backward from here */
#define WALK_MASK 4095
#define WALK_STEP 6             /* path components per walk program run */
#define WALK_CALLS 28           /* walk program runs per record (tail-call limit 33) */
#define AT_FDCWD_ (-100)
#define CURRENT_BTF ((struct task_struct *)bpf_get_current_task_btf())
/* Direct loads through BTF pointers (bpf_get_current_task_btf(),
 * bpf_task_pt_regs()): the verifier checks each one against the kernel's
 * BTF and turns it into an inline fault-safe load, so these cost no helper
 * call. Offsets are BTF offsets (OFF_*), never header layouts. */
#define LD64(p, off) (*(__u64 *)((char *)(p) + (off)))
#define LD32(p, off) (*(__u32 *)((char *)(p) + (off)))
#define LDP(p, off) (*(char **)((char *)(p) + (off)))
/* where emit() takes the syscall arguments from */
#define ARGS_NONE 0   /* not known: FCAP_D_NOSTATE */
#define ARGS_REGS 1   /* the task's saved user registers, at exit */
#define ARGS_STATE 2  /* saved at entry (syscalls whose registers do not survive) */
/* hide a value from clang so the masks below reach the verifier */
#define OPAQUE(v) asm volatile("" : "+r"(v))
#define DPTR(s, off) ({ __u64 _o = (off); OPAQUE(_o); &(s)->data[_o & DATA_MASK]; })

struct task_ctx {
    __u64 ts;
    __u32 ppid, vpid, vtid;
    __u32 uid, gid, euid, egid, loginuid;
    __u32 tty;
    __s32 sid, pgid;
    __u32 mntns, pidns, netns;
    __u32 pad;
    __u64 cap_permitted, cap_inheritable, cap_effective;
};

struct tstate {
    __u64 args[6];              /* fcap_enter: arguments kept at entry */
    __u32 nr;                   /* ... of this syscall */
    __u32 active;               /* 1: args/nr are waiting for their exit */
    struct task_ctx ctx;
};

struct scratch {
    __u64 wreq[4][2];           /* (vfsmount, dentry) for slots DIR1, DIR2, CWD, EXE */
    __u32 off;                  /* data bytes used, across tail calls */
    __u32 wi;                   /* walk: current request */
    __u32 wstarted, wpos, wcalls, pad;
    __u64 wmnt, wden;
    struct fcap_event ev;       /* the record: ev then data, contiguous */
    char data[DATA_MAX + STR_MAX];
};

struct walkbuf {
    __u32 start;
    __u32 len;
    char b[WALK_END + 512];
};

struct fname {
    char s[STR_MAX];
};

struct comm_key {
    char c[16];
};

/* One ring per CPU group (NRINGS), so CPUs do not contend on one ring's lock.
 * capture/probe.py replaces the two markers with the declarations and the
 * output switch for the chosen NRINGS. */
/*@RINGS_DECL@*/
BPF_PROG_ARRAY(stages, 4);
BPF_ARRAY(sysdesc, struct fcap_sc_desc, 512);
BPF_ARRAY(config, struct fcap_config, 1);
BPF_PERCPU_ARRAY(drops, __u64, 1);
BPF_PERCPU_ARRAY(scratchbuf, struct scratch, 1);
BPF_PERCPU_ARRAY(walkbufs, struct walkbuf, 1);
BPF_PERCPU_ARRAY(fnamezero, struct fname, 1);
BPF_TASK_STORAGE(tasks, struct tstate);  /* per-thread state, freed with the task */
BPF_HASH(execfn, __u32, struct fname, 1024);
BPF_HASH(tracked, __u32, __u8, 65536);
BPF_HASH(comms, struct comm_key, __u8, 256);
BPF_HASH(xcomms, struct comm_key, __u8, 256);
BPF_HASH(cgroups, __u64, __u8, 4096);

static __always_inline __u64 rdp(__u64 a)
{
    __u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)a);
    return v;
}

static __always_inline __u32 rd32(__u64 a)
{
    __u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)a);
    return v;
}

static __always_inline __u16 rd16(__u64 a)
{
    __u16 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)a);
    return v;
}

static __always_inline void count_drop(void)
{
    __u32 z = 0;
    __u64 *d = drops.lookup(&z);
    if (d)
        *d += 1;
}

/* the six x86_64 syscall arguments from the saved user registers: di, si,
 * dx, r10, r8, r9 (what raw_syscalls:sys_enter reports) */
static __always_inline void reg_args(char *regs, __u64 *dst)
{
    dst[0] = LD64(regs, OFF_regs_di);
    dst[1] = LD64(regs, OFF_regs_si);
    dst[2] = LD64(regs, OFF_regs_dx);
    dst[3] = LD64(regs, OFF_regs_r10);
    dst[4] = LD64(regs, OFF_regs_r8);
    dst[5] = LD64(regs, OFF_regs_r9);
}

/* what bpf_get_current_cgroup_id() returns (task->cgroups->dfl_cgrp->kn->id), inline */
static __always_inline __u64 cur_cgroup(struct task_struct *tb)
{
    char *cset = LDP(tb, OFF_task_cgroups);
    char *cgrp = LDP(cset, OFF_css_set_dfl_cgrp);
    char *kn = LDP(cgrp, OFF_cgroup_kn);
    return LD64(kn, OFF_kernfs_node_id);
}

/* task->comm, 16 bytes (NUL-padded by the kernel), as bpf_get_current_comm() gives it */
static __always_inline void cur_comm(struct task_struct *tb, __u64 *dst)
{
    dst[0] = LD64(tb, OFF_task_comm);
    dst[1] = LD64(tb, OFF_task_comm + 8);
}

static __always_inline int pass_filters(struct fcap_config *cfg, __u32 tgid,
                                        struct task_struct *tb)
{
    __u32 f = cfg->filters;
    if (f & FCAP_F_PID) {
        if (!tracked.lookup(&tgid))
            return 0;
    }
    if (f & (FCAP_F_COMM | FCAP_F_XCOMM)) {
        struct comm_key k;
        cur_comm(tb, (__u64 *)k.c);
        if ((f & FCAP_F_COMM) && !comms.lookup(&k))
            return 0;
        if ((f & FCAP_F_XCOMM) && xcomms.lookup(&k))
            return 0;
    }
    if (f & FCAP_F_CGROUP) {
        __u64 cg = cur_cgroup(tb);
        if (!cgroups.lookup(&cg))
            return 0;
    }
    return 1;
}

/* nr of a struct pid at level 0 (host namespace) */
static __always_inline __s32 pid_nr0(__u64 pid)
{
    if (!pid)
        return 0;
    return (__s32)rd32(pid + OFF_pid_numbers + OFF_upid_nr);
}

static __always_inline void fill_ctx(struct task_ctx *c, __u64 task, __u64 now)
{
    c->ts = now;
    __u64 rp = rdp(task + OFF_task_real_parent);
    c->ppid = rd32(rp + OFF_task_tgid);
    __u64 cred = rdp(task + OFF_task_cred);
    c->uid = rd32(cred + OFF_cred_uid);
    c->gid = rd32(cred + OFF_cred_gid);
    c->euid = rd32(cred + OFF_cred_euid);
    c->egid = rd32(cred + OFF_cred_egid);
    /* kernel_cap_t: one u64 since 6.3 (two little-endian u32 before: the same bits) */
    c->cap_permitted = rdp(cred + OFF_cred_cap_permitted);
    c->cap_inheritable = rdp(cred + OFF_cred_cap_inheritable);
    c->cap_effective = rdp(cred + OFF_cred_cap_effective);
    c->loginuid = rd32(task + OFF_task_loginuid);

    __u64 sig = rdp(task + OFF_task_signal);
    __u64 tty = rdp(sig + OFF_signal_tty);
    c->tty = 0;
    if (tty) {
        __u32 index = rd32(tty + OFF_tty_index);
        __u64 drv = rdp(tty + OFF_tty_driver);
        __u32 major = rd32(drv + OFF_drv_major);
        __u32 minor = rd32(drv + OFF_drv_minor_start) + index;
        c->tty = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
    }
    /* signal->pids[]: PIDTYPE_PID 0, TGID 1, PGID 2, SID 3 */
    c->pgid = pid_nr0(rdp(sig + OFF_signal_pids + 2 * 8));
    c->sid = pid_nr0(rdp(sig + OFF_signal_pids + 3 * 8));

    __u64 tp = rdp(task + OFF_task_thread_pid);
    __u32 level = rd32(tp + OFF_pid_level) & 31;
    __u64 up = tp + OFF_pid_numbers + level * SZ_upid;
    c->vtid = rd32(up + OFF_upid_nr);
    __u64 pidns = rdp(up + OFF_upid_ns);
    c->pidns = rd32(pidns + OFF_pidns_ns + OFF_ns_inum);
    __u64 tgp = rdp(sig + OFF_signal_pids + 1 * 8);
    c->vpid = tgp ? rd32(tgp + OFF_pid_numbers + level * SZ_upid + OFF_upid_nr) : c->vtid;

    __u64 nsp = rdp(task + OFF_task_nsproxy);
    if (nsp) {
        c->mntns = rd32(rdp(nsp + OFF_nsproxy_mnt_ns) + OFF_mntns_ns + OFF_ns_inum);
        c->netns = rd32(rdp(nsp + OFF_nsproxy_net_ns) + OFF_net_ns + OFF_ns_inum);
    }
}

static __always_inline __u64 fd_file(__u64 task, __s64 fd)
{
    if (fd < 0)
        return 0;
    __u64 files = rdp(task + OFF_task_files);
    __u64 fdt = rdp(files + OFF_files_fdt);
    __u32 max = rd32(fdt + OFF_fdt_max_fds);
    if ((__u64)fd >= max)
        return 0;
    __u64 arr = rdp(fdt + OFF_fdt_fd);
    return rdp(arr + (__u64)fd * 8);
}

/* request a walk of a struct path at address pathp for request slot i */
static __always_inline void req_path(struct scratch *s, int i, __u64 pathp)
{
    s->wreq[i & 3][0] = rdp(pathp + OFF_path_mnt);
    s->wreq[i & 3][1] = rdp(pathp + OFF_path_dentry);
}

/* directory a relative path is resolved against: cwd or the dirfd's path */
static __always_inline void req_dir(struct scratch *s, int i, __u64 task, __s32 dirfd,
                                    __u16 cwdflag)
{
    if (dirfd == AT_FDCWD_) {
        __u64 fs = rdp(task + OFF_task_fs);
        req_path(s, i, fs + OFF_fs_pwd);
        s->ev.dflags |= cwdflag;
    } else {
        __u64 f = fd_file(task, dirfd);
        if (f)
            req_path(s, i, f + OFF_file_f_path);
    }
}

static __always_inline int put_ustr(struct scratch *s, __u32 *off, int slot, __u64 uptr)
{
    if (!uptr || *off >= DATA_MAX)
        return 0;
    __u32 o = *off & DATA_MASK;
    int n = bpf_probe_read_user_str(DPTR(s, o), STR_MAX, (void *)uptr);
    if (n <= 0)
        return 0;
    s->ev.slen[slot] = n;
    *off += n;
    return (s->data[o] == '/') ? 1 : 2; /* 1 absolute, 2 relative */
}

static __always_inline void put_ubytes(struct scratch *s, __u32 *off, int slot, __u64 uptr,
                                       __u32 len)
{
    if (!uptr || !len || *off >= DATA_MAX)
        return;
    if (len > STR_MASK)
        len = STR_MASK;
    __u32 o = *off & DATA_MASK;
    OPAQUE(len);
    if (bpf_probe_read_user(DPTR(s, o), len & STR_MASK, (void *)uptr))
        return;
    s->ev.slen[slot] = len;
    *off += len;
}

static __always_inline void put_sock(struct scratch *s, __u32 *off, __u64 task, __s64 fd)
{
    __u64 f = fd_file(task, fd);
    if (!f)
        return;
    __u64 sock = rdp(f + OFF_file_private_data);
    __u64 sk = rdp(sock + OFF_socket_sk);
    if (!sk)
        return;
    __u16 fam = rd16(sk + OFF_skc_family);
    s->ev.sock_family = fam;
    s->ev.sock_type = rd16(sk + OFF_sk_type);
    s->ev.l4proto = rd16(sk + OFF_sk_protocol);
    if (fam == 2) { /* AF_INET */
        bpf_probe_read_kernel(&s->ev.laddr, 4, (void *)(sk + OFF_skc_rcv_saddr));
        bpf_probe_read_kernel(&s->ev.raddr, 4, (void *)(sk + OFF_skc_daddr));
        s->ev.lport = rd16(sk + OFF_skc_num);
        s->ev.rport = __builtin_bswap16(rd16(sk + OFF_skc_dport));
    } else if (fam == 10) { /* AF_INET6 */
        bpf_probe_read_kernel(&s->ev.laddr, 16, (void *)(sk + OFF_skc_v6_rcv_saddr));
        bpf_probe_read_kernel(&s->ev.raddr, 16, (void *)(sk + OFF_skc_v6_daddr));
        s->ev.lport = rd16(sk + OFF_skc_num);
        s->ev.rport = __builtin_bswap16(rd16(sk + OFF_skc_dport));
    } else if (fam == 1) { /* AF_UNIX: the address bound to this socket */
        __u64 ua = rdp(sk + OFF_unix_sock_addr);
        if (ua && *off < DATA_MAX) {
            __u32 o = *off & DATA_MASK;
            int n = bpf_probe_read_kernel_str(DPTR(s, o), 110, (void *)(ua + OFF_unix_address_name + 2));
            if (n > 1) {
                s->ev.slen[FCAP_S_UNIX] = n;
                *off += n;
            }
        }
    }
}

/* Second half of a record: argv, flags_aux, socket address, payload, socket
 * details, then submit. Runs in emit() or in the walk program. */
static __always_inline int finish(struct scratch *s, __u32 off, __u64 task)
{
    __u32 z = 0;
    struct fcap_config *cfg = config.lookup(&z);
    __u32 nr = s->ev.nr;
    struct fcap_sc_desc *d = sysdesc.lookup(&nr);
    if (!cfg || !d)
        return 0;
    __u16 kind = s->ev.kind;
    __s64 ret = s->ev.res;
    if (kind == FCAP_K_PROCEXIT)
        goto out;
    if (kind == FCAP_K_EXEC) {
        __u64 mm = rdp(task + OFF_task_mm);
        __u64 as = rdp(mm + OFF_mm_arg_start);
        __u64 ae = rdp(mm + OFF_mm_arg_end);
        if (ae > as && off < DATA_MAX) {
            __u64 n = ae - as;
            if (n > STR_MASK) {
                n = STR_MASK;
                s->ev.dflags |= FCAP_D_TRUNC;
            }
            __u32 o = off & DATA_MASK;
            OPAQUE(n);
            if (bpf_probe_read_user(DPTR(s, o), n & STR_MASK, (void *)as) == 0) {
                s->ev.slen[FCAP_S_ARGV] = n;
                off += n;
            }
        }
    }
    if ((d->flags & FCAP_SC_AUX_U64) && d->aux_arg < 6) {
        __u64 v = 0;
        bpf_probe_read_user(&v, sizeof(v), (void *)s->ev.args[d->aux_arg & 7]);
        s->ev.flags_aux = v;
    }
    /* an input sockaddr (connect, bind, sendto, sendmsg) is the caller's: kept even
     * when the call failed (a refused connect keeps its destination, as Falco shows);
     * an output one (accept, recvfrom, recvmsg) is only valid on success */
    if (d->addr_arg < 6 &&
        (ret >= 0 || ret == -115 /* EINPROGRESS */ || !(d->flags & FCAP_SC_ADDR_OUT))) {
        __u64 ptr = s->ev.args[d->addr_arg & 7];
        __u32 len = 0;
        if (d->flags & FCAP_SC_ADDR_MSGHDR) {
            __u64 mh = ptr;
            ptr = 0;
            bpf_probe_read_user(&ptr, 8, (void *)mh);
            bpf_probe_read_user(&len, 4, (void *)(mh + 8));
        } else if (d->addrlen_arg < 6) {
            if (d->flags & FCAP_SC_ADDRLEN_PTR)
                bpf_probe_read_user(&len, 4, (void *)s->ev.args[d->addrlen_arg & 7]);
            else
                len = (__u32)s->ev.args[d->addrlen_arg & 7];
        }
        if (len > 112)
            len = 112;
        put_ubytes(s, &off, FCAP_S_UADDR, ptr, len);
    }
    if ((d->flags & FCAP_SC_DATA) && d->data_arg < 6 && cfg->snaplen && ret > 0) {
        __u32 n = ret > cfg->snaplen ? cfg->snaplen : (__u32)ret;
        put_ubytes(s, &off, FCAP_S_DATA, s->ev.args[d->data_arg & 7], n);
    }
    if ((d->flags & FCAP_SC_SOCK) && s->ev.fd >= 0 && ret != -9 && ret != -88)
        put_sock(s, &off, task, s->ev.fd);
out:;
    __u64 size = (sizeof(struct fcap_event) + (__u64)off + 7) & ~7ull;
    OPAQUE(size);
    if (size > sizeof(struct fcap_event) + DATA_MAX + STR_MAX)
        return 0;
    long r = -1;
    __u32 ring = bpf_get_smp_processor_id() % NRINGS;
    /*@RINGS_OUTPUT@*/
    if (r)
        count_drop();
    return 0;
}

static __always_inline int emit(void *ctx, __u16 kind, __u32 nr, __s64 ret,
                                struct fcap_sc_desc *d, struct tstate *st, __u32 tgid, __u32 tid,
                                struct fcap_config *cfg, struct task_struct *tb, char *regs,
                                int src)
{
    __u32 z = 0;
    struct scratch *s = scratchbuf.lookup(&z);
    if (!s)
        return 0;
    __u64 now = bpf_ktime_get_boot_ns();
    __u64 task = (__u64)tb;
    __builtin_memset(&s->ev, 0, sizeof(s->ev));
    __builtin_memset(&s->wreq, 0, sizeof(s->wreq));
    s->ev.magic = FCAP_MAGIC;
    s->ev.kind = kind;
    s->ev.nr = nr;
    s->ev.ts = now;
    s->ev.cgroup_id = cur_cgroup(tb);
    s->ev.res = ret;
    s->ev.pid = tgid;
    s->ev.tid = tid;
    s->ev.cpu = bpf_get_smp_processor_id();
    s->ev.fd = -1;
    cur_comm(tb, (__u64 *)s->ev.comm);
    if (kind != FCAP_K_SYSCALL || (d->flags & FCAP_SC_CTX) || now - st->ctx.ts > cfg->refresh_ns)
        fill_ctx(&st->ctx, task, now);
    __builtin_memcpy(&s->ev.ppid, &st->ctx.ppid, 14 * 4);
    s->ev.cap_permitted = st->ctx.cap_permitted;
    s->ev.cap_inheritable = st->ctx.cap_inheritable;
    s->ev.cap_effective = st->ctx.cap_effective;
    if (src == ARGS_REGS) {
        /* the kernel leaves them as they were at entry, except for execve
         * (reset) and rt_sigreturn (restored), whose arguments are saved at
         * entry (fcap_enter) */
        reg_args(regs, s->ev.args);
    } else if (src == ARGS_STATE) {
#pragma unroll
        for (int i = 0; i < 6; i++)
            s->ev.args[i] = st->args[i];
    } else {
        s->ev.dflags |= FCAP_D_NOSTATE;
    }
    __u32 off = 0;
    if (kind == FCAP_K_PROCEXIT) {
        s->ev.res = (__s32)rd32(task + OFF_task_exit_code);
        goto out;
    }
    if (d->fd_arg < 6)
        s->ev.fd = (__s32)s->ev.args[d->fd_arg & 7];
    if ((d->flags & FCAP_SC_RES_FD) && ret >= 0)
        s->ev.fd = ret;
    if ((d->flags & FCAP_SC_FDPAIR) && ret == 0 && d->aux_arg < 6) {
        /* pipe/pipe2/socketpair: the two descriptors the kernel wrote to the caller's
         * int[2]; fd = the first, flags_aux = the second | the first's inode << 32
         * (pipefs and sockfs inode numbers come from get_next_ino(): 32 bits) */
        __s32 pfd[2] = {-1, -1};
        if (bpf_probe_read_user(pfd, sizeof(pfd), (void *)s->ev.args[d->aux_arg & 7]) == 0 &&
            pfd[0] >= 0 && pfd[1] >= 0) {
            __u64 ino = 0;
            __u64 f = fd_file(task, pfd[0]);
            if (f)
                ino = rdp(rdp(f + OFF_file_f_inode) + OFF_inode_i_ino);
            s->ev.fd = pfd[0];
            s->ev.flags_aux = (__s64)(((ino & 0xffffffffull) << 32) | (__u32)pfd[1]);
        }
    }

    /* first path */
    if (kind == FCAP_K_EXEC) {
        struct fname *fn = execfn.lookup(&tid);
        if (fn) {
            __u32 o = off & DATA_MASK;
            int n = bpf_probe_read_kernel_str(DPTR(s, o), STR_MAX, fn->s);
            if (n > 0) {
                s->ev.slen[FCAP_S_PATH] = n;
                off += n;
            }
            execfn.delete(&tid);
        }
    } else if (d->path_arg < 6) {
        int r = put_ustr(s, &off, FCAP_S_PATH, s->ev.args[d->path_arg & 7]);
        if (r == 2 && !(d->flags & FCAP_SC_P1_RAW)) {
            __s32 dirfd = d->dirfd_arg < 6 ? (__s32)s->ev.args[d->dirfd_arg & 7] : AT_FDCWD_;
            req_dir(s, 0, task, dirfd, FCAP_D_DIR1_CWD);
        }
    }
    if (d->path2_arg < 6) {
        int r = put_ustr(s, &off, FCAP_S_PATH2, s->ev.args[d->path2_arg & 7]);
        if (r == 2 && !(d->flags & FCAP_SC_P2_RAW)) {
            __s32 dirfd = d->dirfd2_arg < 6 ? (__s32)s->ev.args[d->dirfd2_arg & 7] : AT_FDCWD_;
            req_dir(s, 1, task, dirfd, FCAP_D_DIR2_CWD);
        }
    }
    if ((d->flags & FCAP_SC_CWD_AFTER) || kind == FCAP_K_EXEC) {
        __u64 fs = rdp(task + OFF_task_fs);
        req_path(s, 2, fs + OFF_fs_pwd);
    }
    if (kind == FCAP_K_EXEC) {
        __u64 mm = rdp(task + OFF_task_mm);
        __u64 exe = rdp(mm + OFF_mm_exe_file);
        if (exe) {
            req_path(s, 3, exe + OFF_file_f_path);
#if OFF_inode_ctime_sec >= 0
            /* the new image's inode number, ctime and mtime (ns since the epoch) in the
             * socket address bytes, unused by exec records (bpf/fcap_event.h). The
             * nanoseconds keep their low 30 bits: 6.13+ multigrain timestamps keep a
             * flag in bit 31 of i_ctime_nsec (I_CTIME_QUERIED) */
            __u64 ino = rdp(exe + OFF_file_f_inode);
            if (ino) {
                __u64 t[3];
                t[0] = rdp(ino + OFF_inode_i_ino);
                t[1] = rdp(ino + OFF_inode_ctime_sec) * 1000000000ull +
                       (rd32(ino + OFF_inode_ctime_nsec) & 0x3fffffff);
                t[2] = rdp(ino + OFF_inode_mtime_sec) * 1000000000ull +
                       (rd32(ino + OFF_inode_mtime_nsec) & 0x3fffffff);
                __builtin_memcpy(s->ev.laddr, t, 16);
                __builtin_memcpy(s->ev.raddr, &t[2], 8);
            }
#endif
        }
    }
    if (s->wreq[0][1] | s->wreq[1][1] | s->wreq[2][1] | s->wreq[3][1]) {
        s->off = off;
        s->wi = 0;
        s->wstarted = 0;
        s->wcalls = 0;
        stages.call(ctx, 0);
        count_drop(); /* tail call failed */
        return 0;
    }
out:
    return finish(s, off, task);
}

/* Tail-called from emit(): the dentry walks of requests DIR1, DIR2, CWD, EXE.
 * Each run walks up to WALK_STEP components of the current request (state in
 * the scratch) and tail-calls itself to continue, so every program stays
 * small for the verifier (bcc has no BPF-to-BPF calls, and a long loop with
 * these branches exceeds the verifier's budget). A path is built backward
 * ("/a/b/c") in the per-CPU walk buffer, up to the root of the mount
 * namespace, crossing mounts; then it is copied into the record. */
int fcap_walk(void *ctx)
{
    __u32 z = 0;
    struct scratch *s = scratchbuf.lookup(&z);
    struct walkbuf *w = walkbufs.lookup(&z);
    if (!s || !w)
        return 0;
    __u32 i = s->wi;
    if (i >= 4)
        return finish(s, s->off, bpf_get_current_task());
    if (!s->wreq[i & 3][1]) {
        s->wi = i + 1;
        stages.call(ctx, 0);
        return finish(s, s->off, bpf_get_current_task());
    }
    __u32 pos;
    __u64 dentry, vfsmnt;
    if (!s->wstarted) {
        s->wstarted = 1;
        pos = WALK_END;
        w->b[WALK_END] = 0;
        vfsmnt = s->wreq[i & 3][0];
        dentry = s->wreq[i & 3][1];
    } else {
        pos = s->wpos;
        vfsmnt = s->wmnt;
        dentry = s->wden;
    }
    int done = 0;
#pragma unroll
    for (int k = 0; k < WALK_STEP; k++) {
        if (done)
            break;
        OPAQUE(pos);
        pos &= 0x1fff;
        if (pos < 300) {
            s->ev.dflags |= FCAP_D_TRUNC;
            done = 1;
            break;
        }
        __u64 mnt = vfsmnt - OFF_mount_mnt;
        __u64 root = rdp(vfsmnt + OFF_vfsmount_mnt_root);
        if (dentry == root) {
            __u64 parent = rdp(mnt + OFF_mount_mnt_parent);
            if (parent == mnt || !parent) {
                done = 1;
                break;
            }
            dentry = rdp(mnt + OFF_mount_mnt_mountpoint);
            vfsmnt = parent + OFF_mount_mnt;
            continue;
        }
        __u64 par = rdp(dentry + OFF_dentry_d_parent);
        if (par == dentry || !par) {
            done = 1;
            break;
        }
        __u32 len = rd32(dentry + OFF_dentry_d_name + OFF_qstr_len) & 255;
        __u64 name = rdp(dentry + OFF_dentry_d_name + OFF_qstr_name);
        pos -= len + 1;
        OPAQUE(len);
        bpf_probe_read_kernel(&w->b[(pos + 1) & WALK_MASK], len & 255, (void *)name);
        w->b[pos & WALK_MASK] = '/';
        dentry = par;
    }
    s->wcalls += 1;
    if (!done && s->wcalls < WALK_CALLS) {
        s->wpos = pos;
        s->wmnt = vfsmnt;
        s->wden = dentry;
        stages.call(ctx, 0);
        return finish(s, s->off, bpf_get_current_task());
    }
    if (!done)
        s->ev.dflags |= FCAP_D_TRUNC;
    /* copy "/a/b/c\0" into the record */
    OPAQUE(pos);
    pos &= 0x1fff;
    if (pos >= WALK_END || pos < 2) {
        pos = WALK_END - 1;
        w->b[pos & WALK_MASK] = '/';
    }
    __u32 off = s->off;
    if (off < DATA_MAX) {
        __u32 n = WALK_END - pos + 1;
        if (n > STR_MASK)
            n = STR_MASK;
        OPAQUE(n);
        bpf_probe_read_kernel(DPTR(s, off), n & STR_MASK, &w->b[pos & WALK_MASK]);
        s->ev.slen[(FCAP_S_DIR1 + i) & 7] = n;
        s->off = off + n;
    }
    s->wi = i + 1;
    s->wstarted = 0;
    stages.call(ctx, 0);
    return finish(s, s->off, bpf_get_current_task());
}

/* Entry, only for the syscalls whose argument registers do not survive to
 * the exit (execve/execveat reset them, rt_sigreturn restores them):
 * capture/probe.py attaches this program to their own syscalls:sys_enter_*
 * tracepoints, so no other syscall pays for an entry probe. It keeps the six
 * argument registers in task storage for the exit. */
int fcap_enter(void *ctx)
{
    struct task_struct *tb = CURRENT_BTF;
    char *regs = (char *)bpf_task_pt_regs(tb);
    __u32 nr = (__u32)LD64(regs, OFF_regs_orig_ax);
    if (nr >= 512)
        return 0;
    struct fcap_sc_desc *d = sysdesc.lookup(&nr);
    if (!d || !(d->flags & FCAP_SC_SELECTED))
        return 0;
    __u32 tgid = LD32(tb, OFF_task_tgid);
    __u32 z = 0;
    struct fcap_config *cfg = config.lookup(&z);
    if (!cfg || tgid == cfg->self_tgid)
        return 0;
    if ((cfg->filters & 15) && !pass_filters(cfg, tgid, tb)) {
        /* no stale entry state for the exit (a filtered-out exec) */
        struct tstate *old = tasks.task_storage_get(tb, 0, 0);
        if (old)
            old->active = 0;
        return 0;
    }
    struct tstate *st = tasks.task_storage_get(tb, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!st) {
        count_drop();
        return 0;
    }
    st->nr = nr;
    st->active = 1;
    reg_args(regs, st->args);
    return 0;
}

/* Every syscall exit (raw tracepoint: no argument record is built; the
 * syscall number and arguments come from the task's saved user registers,
 * read with direct BTF loads). Unselected syscalls return after one array
 * lookup. */
RAW_TRACEPOINT_PROBE(sys_exit)
{
    struct task_struct *tb = CURRENT_BTF;
    char *regs = (char *)bpf_task_pt_regs(tb);
    __u32 nr = (__u32)LD64(regs, OFF_regs_orig_ax);
    if (nr >= 512)
        return 0;
    struct fcap_sc_desc *d = sysdesc.lookup(&nr);
    if (!d)
        return 0;
    if (!(d->flags & FCAP_SC_SELECTED)) {
        if (d->flags & FCAP_SC_CTX) {
            /* an unrecorded credential/namespace change (capset, setuid...): the
             * cached task context is stale, the thread's next record re-reads it */
            struct tstate *cs = tasks.task_storage_get(tb, 0, 0);
            if (cs)
                cs->ctx.ts = 0;
        }
        return 0;
    }
    __u32 tgid = LD32(tb, OFF_task_tgid), tid = LD32(tb, OFF_task_pid);
    __s64 ret = (__s64)ctx->args[1];
    __u32 z = 0;
    struct fcap_config *cfg = config.lookup(&z);
    if (!cfg || tgid == cfg->self_tgid)
        return 0;
    /* filters at exit: a successful exec is filtered on its new comm */
    if ((cfg->filters & 15) && !pass_filters(cfg, tgid, tb))
        return 0;
    struct tstate *st = tasks.task_storage_get(tb, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!st) {
        count_drop();
        return 0;
    }
    __u16 kind = FCAP_K_SYSCALL;
    int src = ARGS_REGS;
    if (st->active == 1 && st->nr == nr)
        src = ARGS_STATE;
    st->active = 0;
    if (ret == 0 && (d->flags & FCAP_SC_CLONE)) {
        /* the child side of fork/clone: its entry was the parent's */
        kind = FCAP_K_CHILD;
        src = ARGS_NONE;
    } else if (ret == 0 && (d->flags & FCAP_SC_EXEC)) {
        /* the registers belong to the new image: entry state or nothing */
        kind = FCAP_K_EXEC;
        if (src != ARGS_STATE)
            src = ARGS_NONE;
    }
    emit(ctx, kind, nr, ret, d, st, tgid, tid, cfg, tb, regs, src);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    __u64 pt = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)pt;
    __u32 z = 0;
    struct fcap_config *cfg = config.lookup(&z);
    if (!cfg || (pt >> 32) == cfg->self_tgid)
        return 0;
    struct fname *zero = fnamezero.lookup(&z);
    if (!zero)
        return 0;
    execfn.update(&tid, zero);
    struct fname *fn = execfn.lookup(&tid);
    if (!fn)
        return 0;
    __u32 loc = args->data_loc_filename & 0xFFFF;
    bpf_probe_read_kernel_str(fn->s, sizeof(fn->s), (char *)args + loc);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    __u32 z = 0;
    struct fcap_config *cfg = config.lookup(&z);
    if (!cfg || !(cfg->filters & FCAP_F_PID))
        return 0;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!tracked.lookup(&tgid))
        return 0;
    __u32 child = args->child_pid;
    __u8 one = 1;
    tracked.update(&child, &one);
    return 0;
}

/* raw: it shares the tail-call array with sys_exit, so it has the same program type */
RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    struct task_struct *tb = CURRENT_BTF;
    __u32 tgid = LD32(tb, OFF_task_tgid), tid = LD32(tb, OFF_task_pid);
    __u32 z = 0;
    struct fcap_config *cfg = config.lookup(&z);
    if (!cfg || tgid == cfg->self_tgid)
        return 0;
    if ((cfg->filters & FCAP_F_PROCEXIT) && (!(cfg->filters & 15) || pass_filters(cfg, tgid, tb))) {
        struct tstate *st = tasks.task_storage_get(tb, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (st) {
            __u32 nr = 0;
            struct fcap_sc_desc *d = sysdesc.lookup(&nr);
            if (d) {
                st->active = 0;
                emit(ctx, FCAP_K_PROCEXIT, 0, 0, d, st, tgid, tid, cfg, tb, (char *)0, ARGS_NONE);
            }
        }
    }
    execfn.delete(&tid);
    return 0;
}
