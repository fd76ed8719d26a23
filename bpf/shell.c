/* fcap shell probe: typed shell input, line by line.
 *
 * Three sources feed one ring buffer of `struct shell_rec` (bpf/shell.h):
 *  - uprobe/uretprobe on readline() in bash (statically linked or libreadline.so):
 *    the entry marks the thread "in readline", the return emits the line;
 *  - syscalls:sys_enter_read/sys_exit_read of processes whose comm is a shell
 *    (map shell_comms), when the fd is a terminal (character device with a tty
 *    major) and the thread is not inside readline: the bytes read (a whole line in
 *    canonical mode, keystrokes in raw mode, e.g. busybox ash's line editing),
 *    or, when the terminal is canonical with ECHO off (a password prompt), a
 *    marker without the bytes;
 *  - sched:sched_process_exec of shells, so userspace attaches readline probes to
 *    binaries it has not seen yet (containers bring their own /bin/bash).
 *
 * No kernel struct layout comes from headers: every member is read at an offset
 * computed from the running kernel's BTF (capture/shell_btf.py -> -DOFF_*).
 */
#include <uapi/linux/ptrace.h>
#include "shell.h"

#define ECHO_FLAG 0000010
#define ICANON_FLAG 0000002
#define PIDTYPE_PGID 2
#define PIDTYPE_SID 3
#define S_IFMT_ 00170000
#define S_IFCHR_ 0020000

struct comm_key { char comm[SHELL_COMM_LEN]; };
struct read_arg { unsigned long long buf; int fd; };
struct exe_key { unsigned long long ino; unsigned int dev; unsigned int pad; };

BPF_RINGBUF_OUTPUT(shell_events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(scratch, struct shell_rec, 1);
BPF_HASH(shell_comms, struct comm_key, u8, 64);
BPF_HASH(in_readline, u32, u8, 8192);
BPF_HASH(read_args, u32, struct read_arg, 8192);
BPF_ARRAY(lost, u64, 1);
BPF_HASH(known_exe, struct exe_key, u8, 4096);  /* binaries userspace has handled */

static __always_inline u64 rd64(u64 addr) {
    u64 v = 0;
    if (addr)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

static __always_inline u32 rd32(u64 addr) {
    u32 v = 0;
    if (addr)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

static __always_inline u32 pid_nr(u64 signal, int type) {
    u64 pid = rd64(signal + OFF_SIGNAL_PIDS + type * 8);
    return pid ? rd32(pid + OFF_PID_NUMBERS + OFF_UPID_NR) : 0;
}

static __always_inline int is_shell(void) {
    struct comm_key k = {};
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    return shell_comms.lookup(&k) != 0;
}

/* kernel dev_t of a tty_struct */
static __always_inline u32 tty_dev(u64 tty) {
    if (!tty)
        return 0;
    u64 drv = rd64(tty + OFF_TTY_DRIVER);
    u32 major = rd32(drv + OFF_DRIVER_MAJOR);
    u32 minor = rd32(drv + OFF_DRIVER_MINOR_START) + rd32(tty + OFF_TTY_INDEX);
    return (major << 20) | minor;
}

static __always_inline struct shell_rec *fill(u8 kind) {
    int zero = 0;
    struct shell_rec *r = scratch.lookup(&zero);
    if (!r)
        return 0;
    u64 task = bpf_get_current_task();
    u64 id = bpf_get_current_pid_tgid();
    u64 ug = bpf_get_current_uid_gid();
    u64 signal = rd64(task + OFF_TASK_SIGNAL);
    r->ts = bpf_ktime_get_boot_ns();
    r->cgroup_id = bpf_get_current_cgroup_id();
    r->pid = id >> 32;
    r->tid = (u32)id;
    r->ppid = rd32(rd64(task + OFF_TASK_REAL_PARENT) + OFF_TASK_TGID);
    r->uid = (u32)ug;
    r->gid = ug >> 32;
    r->loginuid = rd32(task + OFF_TASK_LOGINUID);
    r->sid = pid_nr(signal, PIDTYPE_SID);
    r->pgid = pid_nr(signal, PIDTYPE_PGID);
    r->tty = 0;
    r->len = 0;
    r->tty_lflag = 0;
    r->cpu = bpf_get_smp_processor_id();
    r->kind = kind;
    r->flags = 0;
    bpf_get_current_comm(&r->comm, sizeof(r->comm));
    return r;
}

static __always_inline void submit(struct shell_rec *r) {
    u32 n = r->len & (SHELL_MAX_DATA - 1);
    if (shell_events.ringbuf_output(r, SHELL_HDR_SIZE + n, 0) != 0) {
        int zero = 0;
        u64 *c = lost.lookup(&zero);
        if (c)
            __sync_fetch_and_add(c, 1);
    }
}

/* ---- readline ---------------------------------------------------------- */

int rl_enter(struct pt_regs *ctx) {
    if (!is_shell())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u8 one = 1;
    in_readline.update(&tid, &one);
    return 0;
}

int rl_return(struct pt_regs *ctx) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (!in_readline.lookup(&tid))
        return 0;  /* entry not seen (probe attached mid-call): the tty-read path had it */
    in_readline.delete(&tid);
    u64 line = PT_REGS_RC(ctx);
    if (!line)
        return 0;  /* EOF */
    struct shell_rec *r = fill(SHELL_K_READLINE);
    if (!r)
        return 0;
    u64 task = bpf_get_current_task();
    u64 tty = rd64(rd64(task + OFF_TASK_SIGNAL) + OFF_SIGNAL_TTY);
    if (tty) {
        r->tty = tty_dev(tty);
        r->tty_lflag = rd32(tty + OFF_TTY_TERMIOS + OFF_KTERMIOS_LFLAG);
        r->flags |= SHELL_F_HAVE_TTY;
        if (r->tty_lflag & ICANON_FLAG)
            r->flags |= SHELL_F_ICANON;
        if (r->tty_lflag & ECHO_FLAG)
            r->flags |= SHELL_F_ECHO;
    }
    /* readline restored the terminal before returning: ECHO off now means the
       user had turned it off (a password prompt): withhold the line. */
    if (tty && !(r->tty_lflag & ECHO_FLAG)) {
        r->kind = SHELL_K_WITHHELD;
        r->flags |= SHELL_F_EOL;
        submit(r);
        return 0;
    }
    int n = bpf_probe_read_user_str(r->data, SHELL_MAX_DATA, (void *)line);
    if (n <= 0)
        return 0;
    r->len = n - 1;
    if (n == SHELL_MAX_DATA)
        r->flags |= SHELL_F_TRUNC;
    r->flags |= SHELL_F_EOL;
    submit(r);
    return 0;
}

/* ---- read() of a terminal by a shell ------------------------------------ */

TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if (!is_shell())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (in_readline.lookup(&tid))
        return 0;
    struct read_arg a = {};
    a.buf = (u64)args->buf;
    a.fd = args->fd;
    read_args.update(&tid, &a);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_read) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct read_arg *ap = read_args.lookup(&tid);
    if (!ap)
        return 0;
    struct read_arg a = *ap;
    read_args.delete(&tid);
    long ret = args->ret;
    if (ret <= 0 || a.fd < 0)
        return 0;

    u64 task = bpf_get_current_task();
    u64 fdt = rd64(rd64(task + OFF_TASK_FILES) + OFF_FILES_FDT);
    if ((u32)a.fd >= rd32(fdt + OFF_FDT_MAX_FDS))
        return 0;
    u64 file = rd64(rd64(fdt + OFF_FDT_FD) + (u64)a.fd * 8);
    u64 inode = rd64(file + OFF_FILE_INODE);
    if (!inode)
        return 0;
    u16 mode = 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), (void *)(inode + OFF_INODE_MODE));
    if ((mode & S_IFMT_) != S_IFCHR_)
        return 0;
    u32 rdev = rd32(inode + OFF_INODE_RDEV);
    u32 major = rdev >> 20, minor = rdev & 0xfffff;
    /* terminal slaves: vt/serial (4), BSD pty slaves (3), /dev/tty and /dev/console
       (5:0, 5:1), Unix98 pty slaves (136-143), USB/ARM serial (188, 204, 207) */
    if (!(major == 4 || major == 3 || (major == 5 && minor <= 1) ||
          (major >= 136 && major <= 143) || major == 188 || major == 204 || major == 207))
        return 0;

    struct shell_rec *r = fill(SHELL_K_TTYREAD);
    if (!r)
        return 0;
    r->tty = rdev;
    u64 tty = rd64(rd64(file + OFF_FILE_PRIVATE) + OFF_TFP_TTY);
    if (tty) {
        if (major == 5)
            r->tty = tty_dev(tty);  /* /dev/tty, /dev/console: the real terminal */
        r->tty_lflag = rd32(tty + OFF_TTY_TERMIOS + OFF_KTERMIOS_LFLAG);
        r->flags |= SHELL_F_HAVE_TTY;
        if (r->tty_lflag & ICANON_FLAG)
            r->flags |= SHELL_F_ICANON;
        if (r->tty_lflag & ECHO_FLAG)
            r->flags |= SHELL_F_ECHO;
    }
    char last = 0;
    bpf_probe_read_user(&last, 1, (void *)(a.buf + ret - 1));
    if (last == '\n' || last == '\r')
        r->flags |= SHELL_F_EOL;
    /* canonical mode with ECHO off: the kernel is not echoing and no line editor
       is echoing either -- a password prompt. Never copy the bytes. */
    if (tty && (r->tty_lflag & ICANON_FLAG) && !(r->tty_lflag & ECHO_FLAG)) {
        r->kind = SHELL_K_WITHHELD;
        submit(r);
        return 0;
    }
    u32 n = ret;
    if (n > SHELL_MAX_DATA - 1) {
        n = SHELL_MAX_DATA - 1;
        r->flags |= SHELL_F_TRUNC;
    }
    r->len = n;
    asm volatile("" : "+r"(n));  /* keep the mask: the verifier needs the bound */
    n &= SHELL_MAX_DATA - 1;
    bpf_probe_read_user(r->data, n, (void *)a.buf);
    submit(r);
    return 0;
}

/* ---- new shells --------------------------------------------------------- */

TRACEPOINT_PROBE(sched, sched_process_exec) {
    if (!is_shell())
        return 0;
    u64 task = bpf_get_current_task();
    u64 inode = rd64(rd64(rd64(task + OFF_TASK_MM) + OFF_MM_EXE_FILE) + OFF_FILE_INODE);
    struct exe_key k = {};
    k.ino = rd64(inode + OFF_INODE_INO);
    k.dev = rd32(rd64(inode + OFF_INODE_SB) + OFF_SB_DEV);
    if (known_exe.lookup(&k))
        return 0;  /* already attached, or known to have no readline: no record */
    struct shell_rec *r = fill(SHELL_K_EXEC);
    if (!r)
        return 0;
    __builtin_memcpy(r->data, &k, sizeof(k));
    r->len = sizeof(k);
    submit(r);
    return 0;
}
