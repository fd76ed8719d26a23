"""YAML with positions: PyYAML nodes (libyaml when available) and the value
decoding rules of yaml-cpp, which Falco uses.

Falco reads every scalar as text and converts it on demand
(``YAML::convert<T>``): ``items: [1, 0x10]`` are the strings ``"1"`` and
``"0x10"``; booleans accept ``y/yes/true/on`` and ``n/no/false/off`` in
lower, upper or capitalised case; a plain empty scalar, ``~`` or ``null`` is
null. This module keeps the nodes (with their marks) and decodes them that way.
"""

from __future__ import annotations

import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fcap.errors import SourceLocation

from .positions import PosText, SourceMaps, code, scalar_postext

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL_TAG = "tag:yaml.org,2002:null"
_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}
_UINT = re.compile(r"\+?[0-9]+")

__all__ = ["MappingNode", "Node", "ScalarNode", "SequenceNode", "YamlFile", "compose_all"]


def compose_all(text: str) -> list[Node | None]:
    """The documents of ``text`` as node trees (raises yaml.YAMLError)."""
    return list(yaml.compose_all(text, Loader=_LOADER))


def is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def get(node: Node, key: str) -> Node | None:
    """The value node of ``key`` in a mapping node (first match), or None."""
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def keys(node: Node) -> list[tuple[str, Node]]:
    """The (key text, key node) pairs of a mapping node."""
    if not isinstance(node, MappingNode):
        return []
    return [(k.value if isinstance(k, ScalarNode) else "", k) for k, _ in node.value]


def decode_bool(text: str) -> bool | None:
    """yaml-cpp ``convert<bool>``: flexible case only (``true``, ``TRUE``, ``True``)."""
    if not (text.islower() or text.isupper() or (text[:1].isupper() and text[1:].islower())):
        return None
    t = text.lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def decode_uint(text: str) -> int | None:
    """yaml-cpp unsigned integer conversion (decimal and 0x forms)."""
    t = text.strip()
    if _UINT.fullmatch(t):
        v = int(t)
        return v if v < 2**32 else None
    if t[:2].lower() == "0x":
        try:
            return int(t, 16)
        except ValueError:
            return None
    return None


class YamlFile:
    """One rules file registered in :class:`SourceMaps`, with node helpers."""

    def __init__(self, maps: SourceMaps, name: str, text: str) -> None:
        self.maps = maps
        self.name = name
        self.text = text
        self.file_id = maps.add_file(name, text)

    def code(self, offset: int) -> int:
        return code(self.file_id, offset)

    def loc(self, node: Node | None, length: int | None = None) -> SourceLocation:
        """Location of a node's first character (caret over a one-line scalar)."""
        if node is None:
            return self.maps.location(self.code(0))
        start = node.start_mark.index
        if length is None:
            length = 1
            if isinstance(node, ScalarNode) and node.end_mark.line == node.start_mark.line:
                length = node.end_mark.index - start
            elif isinstance(node, MappingNode) and node.value:
                k = node.value[0][0]
                length = k.end_mark.index - k.start_mark.index
        return self.maps.location(self.code(start), length)

    def mark_loc(self, mark) -> SourceLocation:
        return self.maps.location(self.code(mark.index))

    def postext(self, node: ScalarNode) -> PosText:
        """The scalar's value with the file position of each character."""
        start, end = node.start_mark.index, node.end_mark.index
        return scalar_postext(node.value, self.text[start:end], self.code(start))
