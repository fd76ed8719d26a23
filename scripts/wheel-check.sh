#!/usr/bin/env bash
# Build the wheel, install it into a clean venv, run `fcap --help` and import
# every module it ships. Catches package-dir/package-data mistakes that an
# editable install hides.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FCAP_VENV:-.venv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work/dist"/*.whl 2>"$work/pip.log" || { cat "$work/pip.log"; exit 1; }
(cd "$work" && "$work/venv/bin/fcap" --help >/dev/null)
# the bundled rules and sample ship in the wheel: the default replay finds alerts
alerts=$(cd "$work" && "$work/venv/bin/fcap" replay 2>/dev/null | wc -l)
[ "$alerts" -gt 0 ] || { echo "wheel-check: fcap replay of the bundled sample printed no alert" >&2; exit 1; }
(cd "$work" && "$work/venv/bin/python" - <<'PY'
import importlib, pkgutil, sys
import fcap
mods = ["fcap", "fcap.capture", "fcap.analyze"]
for root in list(mods):
    pkg = importlib.import_module(root)
    mods += [m.name for m in pkgutil.walk_packages(pkg.__path__, root + ".")]
mods = sorted(m for m in set(mods) if not m.endswith("__main__"))
skip_needs_bcc = {"fcap.capture.probe", "fcap.capture.recorder", "fcap.capture.shellprobe"}
failed = []
for name in mods:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == "bcc" and name in skip_needs_bcc:
            continue
        if e.name == "pytest" and name == "fcap.pytest_plugin":  # loaded by pytest only
            continue
        failed.append((name, repr(e)))
    except Exception as e:  # noqa: BLE001
        failed.append((name, repr(e)))
from importlib.resources import files
for data in ["fcap.bpf", "fcap.rules", "fcap.samples"]:
    if not any(files(data).iterdir()):
        failed.append((data, "no data files"))
if failed:
    for f in failed:
        print("wheel-check: cannot import", *f, file=sys.stderr)
    sys.exit(1)
print(f"wheel-check: {len(mods)} modules import from the installed wheel")
PY
)
