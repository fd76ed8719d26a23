/* fcap shell probe: the record shared by bpf/shell.c and capture/shell_decode.py.
 *
 * This header is the kernel/userspace contract of the shell probe. The Python
 * side mirrors it as a numpy dtype (capture/shell_decode.py: REC_DTYPE) and a
 * unit test parses this file to check that both layouts agree. Keep every
 * field naturally aligned; records are variable length: the fixed header
 * (SHELL_HDR_SIZE bytes) followed by `len` bytes of data.
 */
#ifndef FCAP_SHELL_H
#define FCAP_SHELL_H

#define SHELL_MAX_DATA 4096      /* power of two: the BPF side masks with SHELL_MAX_DATA - 1 */
#define SHELL_COMM_LEN 16

/* kind */
#define SHELL_K_READLINE 1       /* a line returned by readline() (uretprobe), data = the line */
#define SHELL_K_TTYREAD 2        /* bytes a shell read() from its terminal, data = the bytes */
#define SHELL_K_WITHHELD 3       /* a terminal read with ECHO off: no data, only the marker */
#define SHELL_K_EXEC 4           /* a shell exec'd a binary not in known_exe: attach uprobes;
                                    data = struct exe_key {u64 ino; u32 dev (kernel dev_t); u32 pad} */

/* flags */
#define SHELL_F_ICANON 1         /* the terminal was in canonical mode */
#define SHELL_F_ECHO 2           /* the terminal echoed input */
#define SHELL_F_TRUNC 4          /* data was cut at SHELL_MAX_DATA - 1 bytes */
#define SHELL_F_EOL 8            /* the read ended with '\n' or '\r' (withheld reads too) */
#define SHELL_F_HAVE_TTY 16      /* tty_lflag is meaningful */

struct shell_rec {
    unsigned long long ts;        /* bpf_ktime_get_boot_ns() */
    unsigned long long cgroup_id; /* bpf_get_current_cgroup_id() */
    unsigned int pid;             /* tgid (host pid namespace) */
    unsigned int tid;
    unsigned int ppid;            /* real_parent->tgid */
    unsigned int uid;
    unsigned int gid;
    unsigned int loginuid;        /* 4294967295 = unset */
    unsigned int sid;             /* session id (host pid namespace) */
    unsigned int pgid;
    unsigned int tty;             /* kernel dev_t (major << 20 | minor) of the terminal */
    unsigned int len;             /* bytes of data following the header */
    unsigned int tty_lflag;       /* termios c_lflag at the time */
    unsigned short cpu;
    unsigned char kind;
    unsigned char flags;
    char comm[SHELL_COMM_LEN];
    char data[SHELL_MAX_DATA];
};

#define SHELL_HDR_SIZE 80         /* offsetof(struct shell_rec, data) */

#endif
