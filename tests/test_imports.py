"""Every module imports, and the layer boundaries hold.

``fcap.analyze`` must never import bcc or the recorder: reading a capture works
without root. The check walks each module's AST, so it cannot be fooled by an
import that happens to succeed on this machine.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEEDS_BCC = {"fcap.capture.probe", "fcap.capture.recorder", "fcap.capture.shellprobe"}


def _modules() -> list[str]:
    names = ["fcap"]
    for root in ("fcap", "fcap.capture", "fcap.analyze"):
        pkg = importlib.import_module(root)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, root + ".")]
    return sorted(set(names) | {"fcap.capture", "fcap.analyze"})


def test_every_module_imports() -> None:
    for name in _modules():
        if name in NEEDS_BCC or name.endswith("__main__"):
            continue
        importlib.import_module(name)


def test_analyze_never_imports_bcc_or_recorder() -> None:
    bad = []
    for path in (REPO / "analyze").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if n == "bcc" or n.startswith("bcc.") or n in NEEDS_BCC:
                    bad.append(f"{path.relative_to(REPO)}: imports {n}")
    assert not bad, "\n".join(bad)
