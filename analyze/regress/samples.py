"""The bundled samples: list them, re-record one, compare with its committed alerts.

A sample is a directory ``samples/<name>/`` holding ``scenario.py`` (performs
the activity for real while ``fcap record`` runs), ``capture.parquet`` (the
committed recording), ``expected.jsonl`` (its alerts under the bundled rules),
``<name>.fcap.yaml`` (the regression test) and ``README.md``.

Re-recording cannot reproduce pids, times or ephemeral ports, so
:func:`rerecord` compares by rule and the fields in :data:`RERECORD_FIELDS`
(process and executable, event type, files, listening port, user, container
and pod), and checks the test's own ``alerts:`` entries; ``--update``
replaces the committed files and re-pins the sha256.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fcap.analyze.regress.alerts import (
    Alert,
    Comparison,
    compare,
    expectations_from_alerts,
    read_jsonl,
    write_jsonl,
)
from fcap.analyze.regress.diff import render_comparison
from fcap.analyze.regress.runner import Runner, bundled_samples_dir, sha256_file
from fcap.analyze.regress.spec import SUFFIX, load_specs

from fcap.errors import UsageError

CAPTURE = "capture.parquet"
EXPECTED = "expected.jsonl"
SCENARIO = "scenario.py"
#: The sample ``fcap replay`` uses when no capture is given.
DEFAULT_SAMPLE = "container-shell"


@dataclass(frozen=True)
class SampleInfo:
    """What ``fcap samples list`` shows."""

    name: str
    path: Path
    title: str
    capture_bytes: int
    expected_count: int


def sample_dir(name: str, root: Path | None = None) -> Path:
    """``samples/<name>/``; raises a usage error listing the samples when unknown."""
    root = root or bundled_samples_dir()
    d = root / name
    if not (d / SCENARIO).is_file():
        names = ", ".join(s.name for s in list_samples(root)) or "none"
        raise UsageError(f"no sample named {name!r} (samples: {names})")
    return d


def default_capture() -> Path:
    """The capture ``fcap replay`` replays by default (the container-shell sample)."""
    return bundled_samples_dir() / DEFAULT_SAMPLE / CAPTURE


def _title(d: Path) -> str:
    readme = d / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip().removeprefix(f"{d.name}:").strip()
    return ""


def list_samples(root: Path | None = None) -> list[SampleInfo]:
    """Every sample directory (one with a scenario.py), sorted by name."""
    root = root or bundled_samples_dir()
    out = []
    for d in sorted(p for p in root.iterdir() if (p / SCENARIO).is_file()):
        cap = d / CAPTURE
        exp = d / EXPECTED
        n = len(read_jsonl(exp)) if exp.is_file() else 0
        out.append(SampleInfo(d.name, d, _title(d), cap.stat().st_size if cap.is_file() else 0, n))
    return out


@dataclass(frozen=True)
class RerecordReport:
    """The outcome of re-recording a sample."""

    same: bool
    text: str
    capture: Path


def record_scenario(d: Path, out: Path, timeout: float = 300) -> None:
    """Run ``samples/<name>/scenario.py OUT`` with this interpreter."""
    r = subprocess.run([sys.executable, str(d / SCENARIO), str(out)], timeout=timeout)
    if r.returncode != 0:
        raise UsageError(f"scenario {d.name} failed with exit code {r.returncode}")


def _pin_sha256(spec_file: Path, digest: str) -> None:
    """Rewrite the ``sha256:`` line of a spec file (or add one after ``capture:``)."""
    text = spec_file.read_text(encoding="utf-8")
    if re.search(r"(?m)^sha256:.*$", text):
        text = re.sub(r"(?m)^sha256:.*$", f"sha256: {digest}", text)
    else:
        text = re.sub(r"(?m)^(capture:.*)$", rf"\1\nsha256: {digest}", text, count=1)
    spec_file.write_text(text, encoding="utf-8")


#: Output fields compared between two recordings of one scenario: what
#: happened, not pids, times, ephemeral ports or command lines carrying pids.
RERECORD_FIELDS: tuple[str, ...] = (
    "proc.name",
    "proc.exepath",
    "evt.type",
    "fd.lport",
    "user.name",
    "container.name",
    "container.image.repository",
    "k8s.pod.name",
    "k8s.ns.name",
    "shell.line",
)


def stable_view(alert: Alert) -> Alert:
    """The alert with only the fields that survive a re-recording.

    ``fd.name`` is kept for files, dropped for connections (``a:p->b:q``
    carries an ephemeral port).
    """
    fields = alert.fields
    keep = {k: fields[k] for k in RERECORD_FIELDS if k in fields}
    name = fields.get("fd.name")
    if name is not None and "->" not in name:
        keep["fd.name"] = name
    return Alert(
        rule=alert.rule,
        priority=alert.priority,
        output_fields=tuple(sorted(keep.items())),
    )


def rerecord(name: str, *, update: bool = False, keep: Path | None = None) -> RerecordReport:
    """Re-run a sample's scenario, replay the new capture, compare with expected.jsonl."""
    d = sample_dir(name)
    specs = [s for f in sorted(d.glob(f"*{SUFFIX}")) for s in load_specs(f)]
    if not specs:
        raise UsageError(f"sample {name} has no *{SUFFIX} test")
    spec = specs[0]
    with tempfile.TemporaryDirectory(prefix=f"fcap-sample-{name}-") as tmp:
        new_cap = Path(tmp) / CAPTURE
        record_scenario(d, new_cap)
        from fcap.analyze.regress.engine_bridge import replay_json

        raw = replay_json([new_cap], list(spec.rules), spec.rule_matching)
        alerts = [Alert.from_json(a) for a in raw]
        old = read_jsonl(d / EXPECTED) if (d / EXPECTED).is_file() else []
        exps = expectations_from_alerts(
            [stable_view(a) for a in old], key_fields=None, with_time=False
        )
        cmp = compare(exps, [stable_view(a) for a in alerts])
        # the test's own assertions (alerts: entries) must hold on the new capture too
        inline = [compare([e], alerts, allow_unexpected=True) for e in spec.expectations]
        cmp = Comparison(
            missing=cmp.missing + tuple(m for c in inline for m in c.missing),
            unexpected=cmp.unexpected, matched=cmp.matched, total=cmp.total,
        )  # fmt: skip
        size = new_cap.stat().st_size
        lines = [
            f"re-recorded {name}: {size / 1024:.1f} KiB, {len(alerts)} alert(s) "
            f"(committed: {len(old)})",
            render_comparison(cmp, title=f"new alerts vs {d / EXPECTED}"),
        ]
        if keep is not None:
            shutil.copy2(new_cap, keep)
            lines.append(f"kept the new capture as {keep}")
        if update:
            shutil.copy2(new_cap, d / CAPTURE)
            if not spec.no_alerts:
                write_jsonl(d / EXPECTED, raw)
            digest = sha256_file(d / CAPTURE)
            for f in sorted(d.glob(f"*{SUFFIX}")):
                _pin_sha256(f, digest)
            lines.append(f"updated {d / CAPTURE} (sha256 {digest}) and {d / EXPECTED}")
        return RerecordReport(cmp.ok, "\n".join(lines), d / CAPTURE)


def write_expected(name: str, runner: Runner | None = None) -> int:
    """Regenerate expected.jsonl of a sample from its committed capture (after a rule change)."""
    d = sample_dir(name)
    spec = next(s for f in sorted(d.glob(f"*{SUFFIX}")) for s in load_specs(f))
    runner = runner or Runner()
    raw = runner.alerts([d / CAPTURE], list(spec.rules), spec.rule_matching)
    return write_jsonl(d / EXPECTED, raw)

