"""``proc.*``, ``thread.*``, ``user.*`` and ``group.*`` (libsinsp thread/user/group filterchecks)."""

from __future__ import annotations

from fcap.analyze.fields._mk import part, sup, unsup
from fcap.analyze.fields.types import ArgKind, FieldType

S, N, U, B = FieldType.STRING, FieldType.INT, FieldType.UINT, FieldType.BOOL
T, R = FieldType.ABSTIME, FieldType.RELTIME
OI, OK = ArgKind.OPTIONAL_INDEX, ArgKind.OPTIONAL_KEY

_NOT_RECORDED = "not recorded by fcap's probes"
_CAPS = (
    "read from the thread's cred at every syscall exit, so it follows setuid (leaving uid 0 "
    "clears the sets) and unshare/setns; libsinsp updates the sets only at exec, capset and "
    "clone (and from /proc at start-up): it keeps the old sets after setuid, and after "
    "CLONE_NEWUSER sets all capabilities, inheritable included (the kernel leaves inheritable "
    "empty). Null (<NA>) in schema-1 captures and shell_line rows"
)
_EXE_TIMES = (
    "exec'ed images only, from the execve/execveat exit (capture schema 3; null in older "
    "captures, for snapshot processes, and when the kernel's BTF has no known inode time "
    "layout); printed as a decimal number of ns like libsinsp (0 is null)"
)
_CAPS_AS = "as thread.cap_permitted: the thread's cred at every syscall exit"
_ANC = (
    "ancestor n (0 = the process itself, 1 = parent ...); without an index a filter matches "
    "any ancestor (LIST column, parent first)"
)

PROC_FIELDS = (
    sup("proc.exe", S, "proc_exe", "argv[0] of the process image (as passed to execve)"),
    sup("proc.pexe", S, "proc_pexe", "proc.exe of the parent"),
    sup("proc.aexe", S, None, "proc.exe of an ancestor: " + _ANC, arg=OI),
    sup("proc.exepath", S, "proc_exepath", "full path of the executable of the image"),
    sup("proc.pexepath", S, "proc_pexepath", "proc.exepath of the parent"),
    sup("proc.aexepath", S, None, "proc.exepath of an ancestor: " + _ANC, arg=OI),
    sup("proc.name", S, "proc_name", "process name (comm of the image, up to 15 chars)"),
    sup("proc.pname", S, "proc_pname", "proc.name of the parent"),
    sup("proc.aname", S, None, "proc.name of an ancestor: " + _ANC, arg=OI),
    sup("proc.args", S, "proc_args", "arguments (argv[1:]) joined by spaces; proc.args[n] = argv[n+1] ('' past the last one)",
        arg=OI),
    sup("proc.aargs", S, None, "proc.args of an ancestor: " + _ANC, arg=OI),
    sup("proc.cmdline", S, "proc_cmdline", "proc.name followed by proc.args"),
    sup("proc.pcmdline", S, "proc_pcmdline", "proc.cmdline of the parent"),
    sup("proc.acmdline", S, None, "proc.cmdline of an ancestor: " + _ANC, arg=OI),
    sup("proc.cmdnargs", U, "proc_cmdnargs", "number of arguments (argv[1:])"),
    sup("proc.cmdlenargs", U, "proc_cmdlenargs", "total length of the arguments (no separators)"),
    sup("proc.exeline", S, "proc_exeline", "proc.exe followed by proc.args"),
    part("proc.env", S, "proc_env", "environment (VAR=value, space separated); proc.env[VAR] = value",
         "only when the capture recorded environments (--env); snapshot processes only "
         "otherwise; null when not recorded", arg=OK),
    part("proc.aenv", S, None, "proc.env of an ancestor",
         "as proc.env; [VAR] searches the ancestors for the variable", arg=OK),
    sup("proc.cwd", S, "proc_cwd", "current working directory (exec, chdir, fork inheritance)"),
    sup("proc.loginshellid", N, "proc_loginshellid",
        "pid of the most distant ancestor (or self) whose name ends in 'sh'"),
    sup("proc.tty", U, "proc_tty", "controlling terminal device number (0 = none)"),
    sup("proc.pid", N, "proc_pid", "process id (thread group id, host pid namespace)"),
    sup("proc.ppid", N, "proc_ppid", "parent process id: the kernel's real_parent at the event "
        "(recorded per row), so reparenting is exact"),
    sup("proc.apid", N, None, "pid of an ancestor: " + _ANC, arg=OI),
    sup("proc.vpid", N, "proc_vpid", "process id inside its pid namespace"),
    part("proc.pvpid", N, "proc_pvpid", "proc.vpid of the parent",
         "known when the process is in the host pid namespace (= proc.ppid); null inside "
         "containers (the parent's namespaced pid is not recorded)"),
    sup("proc.sid", N, "proc_sid", "session id"),
    sup("proc.sname", S, "proc_sname", "name of the session leader (ancestor with pid = sid)"),
    sup("proc.sid.exe", S, "proc_sid_exe", "proc.exe of the session leader"),
    sup("proc.sid.exepath", S, "proc_sid_exepath", "proc.exepath of the session leader"),
    part("proc.vpgid", N, "proc_vpgid", "process group id inside the pid namespace",
         "exact on the host and for group leaders; null for non-leaders inside a pid namespace "
         "(only the host pgid is recorded)"),
    sup("proc.vpgid.name", S, "proc_vpgid_name", "name of the process group leader"),
    sup("proc.vpgid.exe", S, "proc_vpgid_exe", "proc.exe of the process group leader"),
    sup("proc.vpgid.exepath", S, "proc_vpgid_exepath", "proc.exepath of the process group leader"),
    sup("proc.pgid", N, "proc_pgid", "process group id (host pid namespace)"),
    sup("proc.pgid.name", S, "proc_vpgid_name", "name of the process group leader"),
    sup("proc.pgid.exe", S, "proc_vpgid_exe", "proc.exe of the process group leader"),
    sup("proc.pgid.exepath", S, "proc_vpgid_exepath", "proc.exepath of the process group leader"),
    sup("proc.duration", R, "proc_duration", "ns since the process started (fork, or start time "
        "from the snapshot)"),
    sup("proc.ppid.duration", R, "proc_ppid_duration", "proc.duration of the parent"),
    sup("proc.pid.ts", T, "proc_pid_ts", "start time of the process"),
    sup("proc.ppid.ts", T, "proc_ppid_ts", "start time of the parent"),
    part("proc.is_exe_writable", B, "proc_is_exe_writable", "the executable is writable by the user",
         "known for processes in the start snapshot only; null for images exec'ed during the "
         "recording (the probe does not record execve's exe flags)"),
    part("proc.is_exe_upper_layer", B, "proc_is_exe_upper_layer",
         "the executable lives in an overlayfs upper layer", "as proc.is_exe_writable"),
    unsup("proc.is_exe_lower_layer", B, _NOT_RECORDED + " (overlayfs layer of the executable)"),
    part("proc.is_exe_from_memfd", B, "proc_is_exe_from_memfd", "the executable is a memfd",
         "snapshot processes from /proc/PID/exe; exec'ed images when the exe path is "
         "'/memfd:...'"),
    sup("proc.is_sid_leader", B, "proc_is_sid_leader", "the process is its session's leader"),
    sup("proc.is_vpgid_leader", B, "proc_is_vpgid_leader", "the process leads its process group"),
    sup("proc.is_pgid_leader", B, "proc_is_vpgid_leader", "the process leads its process group"),
    part("proc.exe_ino", U, "proc_exe_ino", "inode of the executable",
         "exec'ed images: from the execve/execveat exit (mm->exe_file's inode; capture schema "
         "3, null in older captures); snapshot processes: stat of /proc/PID/exe"),
    part("proc.exe_ino.ctime", T, "proc_exe_ino_ctime",
         "status change time (ctime) of the executable's inode, ns since the epoch",
         _EXE_TIMES + "; the nanoseconds without the multigrain-timestamp flag the kernel "
         "(6.13+) keeps in bit 31 of i_ctime_nsec once stat has read the ctime: Falco's "
         "probes read the raw field and then report a ctime 2.147 s late"),
    part("proc.exe_ino.mtime", T, "proc_exe_ino_mtime",
         "modification time (mtime) of the executable's inode, ns since the epoch",
         _EXE_TIMES),
    part("proc.exe_ino.ctime_duration_proc_start", T, "proc_exe_ino_ctime_duration_proc_start",
         "ns from the executable's ctime to the start (clone) of the process that exec'ed it",
         "computed at the exec as libsinsp does (start - ctime; 0 is null, forked children "
         "keep their parent's value); null for snapshot images and when the start of the "
         "exec'ing process predates the capture and it is not in the snapshot. A negative "
         "difference (ctime after the clone) stays negative; libsinsp wraps it as uint64"),
    unsup("proc.exe_ino.ctime_duration_pidns_start", T,
          _NOT_RECORDED + " (needs proc.pidns_init_start_ts)"),
    unsup("proc.pidns_init_start_ts", T, _NOT_RECORDED + " (pid namespace init start time)"),
    part("thread.cap_permitted", S, "thread_cap_permitted",
         "permitted capability set: CAP_* names in bit order, space separated", _CAPS),
    part("thread.cap_inheritable", S, "thread_cap_inheritable",
         "inheritable capability set (text as thread.cap_permitted)", _CAPS_AS),
    part("thread.cap_effective", S, "thread_cap_effective",
         "effective capability set (text as thread.cap_permitted)", _CAPS_AS),
    unsup("proc.fdopencount", U, "fd table size is not tracked (only fds seen in events)"),
    unsup("proc.fdlimit", N, _NOT_RECORDED + " (RLIMIT_NOFILE)"),
    unsup("proc.fdusage", FieldType.DOUBLE, _NOT_RECORDED + " (RLIMIT_NOFILE)"),
    unsup("proc.vmsize", U, _NOT_RECORDED + " (memory counters)"),
    unsup("proc.vmrss", U, _NOT_RECORDED + " (memory counters)"),
    unsup("proc.vmswap", U, _NOT_RECORDED + " (memory counters)"),
    unsup("thread.pfmajor", U, _NOT_RECORDED + " (page fault counters)"),
    unsup("thread.pfminor", U, _NOT_RECORDED + " (page fault counters)"),
    sup("thread.tid", N, "thread_tid", "thread id (host)"),
    sup("thread.ismain", B, "thread_ismain", "the thread is the thread group leader"),
    sup("thread.vtid", N, "thread_vtid", "thread id inside the pid namespace"),
    sup("thread.nametid", S, "thread_nametid", "proc.name and thread.tid joined by ':'"),
    unsup("thread.exectime", R, "needs scheduler switch events, which fcap does not record"),
    unsup("thread.totexectime", R, "needs scheduler switch events, which fcap does not record"),
    part("thread.cgroups", S, "thread_cgroups", "cgroups of the thread",
         "the cgroup v2 path only (subsys=path), from the capture's cgroup table"),
    part("thread.cgroup", S, "thread_cgroup", "cgroup of the thread for a subsystem",
         "every subsystem maps to the cgroup v2 path", arg=ArgKind.KEY),
    unsup("proc.nthreads", U, "thread counts are not tracked"),
    unsup("proc.nchilds", U, "thread counts are not tracked"),
    unsup("thread.cpu", FieldType.DOUBLE, _NOT_RECORDED + " (CPU usage counters)"),
    unsup("thread.cpu.user", FieldType.DOUBLE, _NOT_RECORDED + " (CPU usage counters)"),
    unsup("thread.cpu.system", FieldType.DOUBLE, _NOT_RECORDED + " (CPU usage counters)"),
    unsup("thread.vmsize", U, _NOT_RECORDED + " (memory counters)"),
    unsup("thread.vmrss", U, _NOT_RECORDED + " (memory counters)"),
    unsup("thread.vmsize.b", U, _NOT_RECORDED + " (memory counters)"),
    unsup("thread.vmrss.b", U, _NOT_RECORDED + " (memory counters)"),
    unsup("proc.stdin.type", S, "per-event lookup of fds 0-2 is not computed (use fd.* on the "
          "events that use them)"),
    unsup("proc.stdout.type", S, "per-event lookup of fds 0-2 is not computed"),
    unsup("proc.stderr.type", S, "per-event lookup of fds 0-2 is not computed"),
    unsup("proc.stdin.name", S, "per-event lookup of fds 0-2 is not computed"),
    unsup("proc.stdout.name", S, "per-event lookup of fds 0-2 is not computed"),
    unsup("proc.stderr.name", S, "per-event lookup of fds 0-2 is not computed"),
)

USER_FIELDS = (
    sup("user.uid", U, "user_uid", "effective user id of the thread"),
    sup("user.name", S, "user_name", "user name (capture's user table for the host or the "
        "container; 'root' for uid 0, '<NA>' when unknown)"),
    sup("user.homedir", S, "user_homedir", "home directory ('/root' for uid 0, '<NA>' when unknown)"),
    sup("user.shell", S, "user_shell", "login shell ('<NA>' when unknown)"),
    sup("user.loginuid", N, "user_loginuid", "audit login uid (-1 when unset)"),
    sup("user.loginname", S, "user_loginname", "user name of user.loginuid"),
    sup("group.gid", U, "group_gid", "effective group id of the thread"),
    sup("group.name", S, "group_name", "group name ('<NA>' when unknown, 'root' for gid 0)"),
)
