"""Package discovery for the package-dir mapping in pyproject.toml.

pyproject.toml cannot express "every subpackage of capture/ and analyze/, renamed
under fcap.", so this file lists them; everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup


def _mapped(directory: str, prefix: str) -> list[str]:
    found = find_packages(where=".", include=[directory, f"{directory}.*"])
    return [prefix + name[len(directory):] for name in found]


setup(
    packages=[
        *find_packages(where=".", include=["fcap", "fcap.*"]),
        *_mapped("capture", "fcap.capture"),
        *_mapped("analyze", "fcap.analyze"),
        "fcap.bpf",
        "fcap.rules",
        "fcap.samples",
    ],
)
