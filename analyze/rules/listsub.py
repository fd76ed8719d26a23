"""List names in conditions: Falco's textual substitution before parsing.

Mirrors ``resolve_list`` in ``falco:userspace/engine/rule_loader_compiler.cpp``:
for each list in definition order, every occurrence of its name bounded by
the start/end of the text, blanks or ``(),=`` is replaced — together with
the blanks around it — by ``" " + items + " "`` (no leading blank at the
start of the text), items joined by ``", "``; an item holding a space and not
starting with a quote is wrapped in ``"..."`` (no escaping). An empty list
also eats one adjacent comma. Positions are kept: the substituted text maps to
the list name in the original condition.
"""

from __future__ import annotations

from .positions import PosText

_BLANKS = " \t\n\r"
_DELIMS = _BLANKS + "(),="


def quote_item(v: str) -> str:
    if " " in v and v[:1] not in ('"', "'"):
        return '"' + v + '"'
    return v


def list_text(items: list[str]) -> str:
    return ", ".join(quote_item(v) for v in items)


def resolve_list(cnd: PosText, name: str, sub: str) -> tuple[PosText, bool]:
    """Substitute one list (``sub`` = its joined items) in ``cnd``."""
    text = cnd.text
    used = False
    start = text.find(name)
    while start >= 0:
        end = start + len(name)
        n = len(text)
        if (start == 0 or text[start - 1] in _DELIMS) and (end >= n or text[end] in _DELIMS):
            name_pos = cnd.pos[start]
            while start > 0 and text[start - 1] in _BLANKS:
                start -= 1
            while end < n and text[end] in _BLANKS:
                end += 1
            if not sub:
                if start > 0 and text[start - 1] == ",":
                    start -= 1
                elif end < n and text[end] == ",":
                    end += 1
            piece = PosText.at(sub + " ", name_pos)
            new = cnd.slice(0, start) + PosText.at(" ", name_pos) + piece if start > 0 else piece
            cnd = new + cnd.slice(end, n) if end <= n else new
            text = cnd.text
            start += len(sub) + 1
            used = True
        start = text.find(name, start + 1)
    return cnd, used
