"""The descriptor state is not started when it cannot fit in memory: one clear error."""

from __future__ import annotations

import pytest
from fcap.analyze.compile.load import load_and_compile
from fcap.analyze.engine import replay
from fcap.analyze.regress.runner import bundled_rule_files, bundled_samples_dir
from fcap.analyze.state import memory

from fcap.errors import ResourceError

SAMPLE = bundled_samples_dir() / "reverse-shell" / "capture.parquet"


def test_available_memory_reads_the_kernels_figure() -> None:
    avail = memory.available_memory()
    assert avail is not None and avail > 0


def test_too_little_memory_is_an_error_before_the_state(monkeypatch) -> None:
    monkeypatch.delenv("FCAP_FD_PARTS", raising=False)
    compiled = load_and_compile(bundled_rule_files())[1]
    # 7577 events need ~2 MB: with 1 KiB, more than memory.MAX_PARTS parts
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 10)
    with pytest.raises(ResourceError) as info:
        list(replay(SAMPLE, compiled))
    msg = str(info.value)
    assert "needs about" in msg and "1 KiB" not in msg and "FCAP_NO_MEMORY_CHECK=1" in msg
    assert "0.0 GiB are available, too little even in 64 parts" in msg
    assert "FCAP_FD_PARTS=N" in msg
    monkeypatch.setenv("FCAP_NO_MEMORY_CHECK", "1")
    assert list(replay(SAMPLE, compiled))  # the check skipped, the replay runs


def test_too_little_memory_for_one_piece_builds_parts(monkeypatch) -> None:
    """Between one piece and MAX_PARTS parts, the state is built in parts: same alerts."""
    monkeypatch.delenv("FCAP_FD_PARTS", raising=False)
    compiled = load_and_compile(bundled_rule_files())[1]
    whole = [(a.rule, a.evt_num, a.message) for a in replay(SAMPLE, compiled)]
    need = 7577 * memory.STATE_BYTES_PER_EVENT
    monkeypatch.setattr(memory, "available_memory", lambda: int(need * 0.7))
    assert memory.parts(7577) == 3
    from fcap.analyze.state import fdparts

    seen = []
    plan = fdparts.plan
    monkeypatch.setattr(fdparts, "plan", lambda con, n: seen.append(n) or plan(con, n))
    assert [(a.rule, a.evt_num, a.message) for a in replay(SAMPLE, compiled)] == whole
    assert seen == [3]


def test_parts_that_would_not_fit_either_are_an_error(monkeypatch) -> None:
    """The parts' rows are counted first: reverse-shell's busiest descriptor (3, its
    socket dup'ed onto 0, 1 and 2) keeps ~60% of the rows in one part."""
    monkeypatch.delenv("FCAP_FD_PARTS", raising=False)
    compiled = load_and_compile(bundled_rule_files())[1]
    monkeypatch.setattr(memory, "available_memory",
                        lambda: 7577 * memory.STATE_BYTES_PER_EVENT // 2)
    assert memory.parts(7577) == 4
    with pytest.raises(ResourceError, match="does not fit in memory even in 4 parts: the "
                                            "largest part reads ") as info:
        list(replay(SAMPLE, compiled))
    largest = int(str(info.value).split("largest part reads ")[1].split(" events")[0]
                  .replace(",", ""))
    assert 7577 // 2 < largest < 7577


def test_rules_without_fd_fields_do_not_need_it(monkeypatch, tmp_path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("- rule: execs\n  desc: d\n  condition: evt.type = execve and proc.name = sh\n"
                     "  output: '%proc.name'\n  priority: INFO\n")
    compiled = load_and_compile([rules])[1]
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 20)
    list(replay(SAMPLE, compiled))  # no descriptor state, no check


def test_cli_prints_one_line(monkeypatch, capsys) -> None:
    from fcap.cli import main

    monkeypatch.delenv("FCAP_FD_PARTS", raising=False)
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 10)
    with pytest.raises(SystemExit) as info:
        main(["replay", str(SAMPLE)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fcap: the descriptor state (fd.* fields) of ")
