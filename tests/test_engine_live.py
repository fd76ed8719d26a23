"""Replay of a real recording (root + bcc): the exact alerts of inline rules.

The workload (``sh -c "cat /etc/shadow"`` and a write to a file it names) is
recorded with ``fcap record``; expectations come from the workload and from the
raw capture rows (the event's own timestamp), never from the engine's output.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest
from fcap.analyze.output.format import time_iso8601
from live_support import record_while

pytestmark = pytest.mark.live

RULES = """\
- macro: open_read
  condition: evt.type in (open, openat, openat2) and evt.is_open_read = true
- rule: Shadow read by cat
  desc: test
  condition: open_read and fd.name = /etc/shadow and proc.name = cat and proc.pname = sh
  output: shadow read by %proc.name parent=%proc.pname file=%fd.name
  priority: WARNING
  tags: [test]
- rule: Tagged file written
  desc: test
  condition: evt.type in (open, openat, openat2) and fd.name endswith "{tag}" and proc.name = sh
  output: write %fd.name by %proc.name
  priority: NOTICE
"""
SUFFIX = re.compile(
    r" container_id=\S* container_name=\S* container_image_repository=\S*"
    r" container_image_tag=\S* k8s_pod_name=\S* k8s_ns_name=\S*$"
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine-live")
    tag = secrets.token_hex(4)
    target = tmp / f"out-{tag}"

    def work() -> None:
        subprocess.run(["bash", "-c", f'sh -c "cat /etc/shadow >/dev/null; echo x > {target}"'],
                       check=True)

    res = record_while(tmp / "cap.parquet", work)
    rules = tmp / "rules.yaml"
    rules.write_text(RULES.replace("{tag}", tag))
    return res.files, rules, target


def _raw_ts(files, where: str) -> list[int]:
    import duckdb
    from fcap.capture.reader import open_capture

    con = duckdb.connect()
    open_capture(files).attach(con)
    return [r[0] for r in con.execute(f"SELECT ts FROM raw_events WHERE {where} ORDER BY ts").fetchall()]


def test_live_replay_exact_alerts(recording) -> None:
    from fcap.analyze.compile import compile_ruleset
    from fcap.analyze.engine import replay
    from fcap.analyze.output import AlertWriter
    from fcap.analyze.rules import load_rules

    files, rules, target = recording
    compiled = compile_ruleset(load_rules([str(rules)]))
    assert not compiled.errors, compiled.errors
    alerts = list(replay(files, compiled))
    shadow_ts = _raw_ts(files, "path = '/etc/shadow' AND comm = 'cat' AND res >= 0 "
                               "AND syscall IN ('open', 'openat', 'openat2')")
    write_ts = _raw_ts(files, f"path = '{target}' AND res >= 0 "
                              "AND syscall IN ('open', 'openat', 'openat2')")
    assert len(shadow_ts) == 1 and len(write_ts) == 1
    assert [(a.rule, a.ts) for a in alerts] == [
        ("Shadow read by cat", shadow_ts[0]),
        ("Tagged file written", write_ts[0]),
    ]
    import io

    buf = io.StringIO()
    w = AlertWriter(buf, iso8601=True)
    for a in alerts:
        w.write(a)
    lines = buf.getvalue().splitlines()
    head0 = f"{time_iso8601(shadow_ts[0])}: Warning shadow read by cat parent=sh file=/etc/shadow"
    head1 = f"{time_iso8601(write_ts[0])}: Notice write {target} by sh"
    assert lines[0].startswith(head0) and SUFFIX.fullmatch(lines[0][len(head0):])
    assert lines[1].startswith(head1) and SUFFIX.fullmatch(lines[1][len(head1):])
    obj = json.loads(AlertWriter(io.StringIO(), json_output=True, iso8601=True).format(alerts[0]))
    assert obj["output"] == lines[0]
    assert obj["rule"] == "Shadow read by cat" and obj["priority"] == "Warning"
    assert obj["output_fields"]["fd.name"] == "/etc/shadow"
    assert obj["output_fields"]["proc.pname"] == "sh"
    assert obj["output_fields"]["evt.time.iso8601"] == shadow_ts[0]
    assert obj["tags"] == ["test"]


def test_live_replay_cli_exit_code_and_summary(recording) -> None:
    import os
    import sys

    files, rules, _ = recording
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "fcap", "replay", "-r", str(rules),
                        *map(str, files)], capture_output=True, text=True, cwd=repo,
                       env={**os.environ})
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert "Shadow read by cat: 1" in r.stderr and "Tagged file written: 1" in r.stderr
