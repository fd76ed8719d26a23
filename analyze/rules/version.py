"""The rules engine version fcap implements, and semver checks.

``required_engine_version`` is an integer ``N`` (meaning ``0.N.0``) or a
semver string; a file is accepted when the engine has the same major version
and is not older (``libs:userspace/libsinsp/version.h`` ``compatible_with``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The Falco rules engine version fcap implements: Falco 0.44.x declares
#: engine 0.62.0 (``falco:userspace/engine/falco_engine_version.h@0.44.1``).
ENGINE_VERSION = "0.62.0"

#: Plugins whose fields fcap provides itself, with the version it stands in
#: for. The container plugin's fields (container.*, k8s.*) come from the
#: capture's container table; 0.7.1 is the version Falco main bundles
#: (``falco:CMakeLists.txt`` ``CONTAINER_VERSION``).
PROVIDED_PLUGINS = {"container": "0.7.1"}

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:[-+].*)?")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        m = _SEMVER.fullmatch(str(text).strip())
        if not m:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @classmethod
    def implicit(cls, n: int) -> Version:
        """Integer engine versions of old rules files: ``N`` is ``0.N.0``."""
        return cls(0, n, 0)

    def compatible_with(self, required: Version) -> bool:
        return self.major == required.major and self >= required

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


EngineVersion = Version.parse(ENGINE_VERSION)
assert EngineVersion is not None
