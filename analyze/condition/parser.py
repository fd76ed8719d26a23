"""Parse a Falco condition into the AST of :mod:`fcap.analyze.condition.ast`.

The grammar (``condition.lark``) is a transcription of falcosecurity/libs'
filter parser (``userspace/libsinsp/filter/parser.h``/``parser.cpp``). It is
run by lark's LALR parser with a contextual lexer; the lark object is built
once per process and reused. Every node carries a :class:`Span` (offsets into
the parsed text); syntax errors raise :class:`ConditionSyntaxError` with the
offset, which the rules loader maps back to ``file:line:col``.
"""

from __future__ import annotations

import difflib
import functools
import threading
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from fcap.errors import SourceError, SourceLocation

from .ast import (
    And,
    Compare,
    Exists,
    Expr,
    Field,
    FieldValue,
    Identifier,
    ListLiteral,
    Literal,
    Not,
    Or,
    Span,
    Transform,
    TransformerList,
)
from .escaping import EscapeError, unescape

GRAMMAR = Path(__file__).with_name("condition.lark")

#: Falco parses rule conditions with a recursion limit of 1000 frames
#: (``rule_loader_compiler.cpp``); one level of parentheses costs about five.
MAX_NESTING = 200

#: Operators as ``parser::supported_operators()`` lists them.
OPERATORS = (
    "exists", "<=", "<", ">=", ">", "==", "=", "!=", "glob", "iglob", "contains", "icontains",
    "bcontains", "startswith", "bstartswith", "endswith", "regex", "intersects", "in", "pmatch",
)
LIST_OPERATORS = ("intersects", "in", "pmatch")
MODIFIERS = ("oneof", "anyof", "allof")
TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "len", "join", "concat", "getopt")

_TERMINAL_NAMES = {
    "OR": "'or'", "OR_PAREN": "'or('", "AND": "'and'", "AND_PAREN": "'and('", "NOT": "'not'",
    "NOT_PAREN": "'not('", "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "EXISTS": "'exists'",
    "NUMOP": "a numeric operator", "STROP": "a string operator", "LISTOP": "a list operator",
    "MODIFIER": "a modifier", "XFORM": "a transformer", "VAL": "'val('", "FIELD": "a field",
    "XARG": "'[arg]'", "IDENTIFIER": "an identifier", "QUOTED": "a quoted string",
    "HEX": "a hex number", "NUMBER": "a number", "BARESTR": "a string", "$END": "end of condition",
}


class ConditionSyntaxError(SourceError):
    """A condition does not parse.

    ``offset`` is the 0-based character offset of the problem in ``text``;
    ``location`` is relative to the condition text itself (file
    ``<condition>``) until a loader replaces it with a file position.
    """

    def __init__(self, message: str, text: str, offset: int, *, length: int = 1,
                 hint: str | None = None) -> None:
        self.text = text
        self.offset = max(0, min(offset, len(text)))
        self.length = max(1, length)
        super().__init__(message, location_in_text(text, self.offset, "<condition>", self.length),
                         hint=hint)


def location_in_text(text: str, offset: int, file: str, length: int = 1) -> SourceLocation:
    """The 1-based line/column of ``offset`` in ``text`` (line breaks: LF, CR)."""
    before = text[:offset]
    line = before.count("\n") + 1
    start = before.rfind("\n") + 1
    end = text.find("\n", offset)
    line_text = text[start : end if end >= 0 else len(text)]
    col = offset - start + 1
    length = max(1, min(length, len(line_text) - col + 1))
    return SourceLocation(file, line, col, line_text.rstrip("\r"), length)


class _ParseFailure(Exception):
    """Raised inside tree callbacks; turned into ConditionSyntaxError."""

    def __init__(self, message: str, offset: int, length: int = 1) -> None:
        super().__init__(message)
        self.offset = offset
        self.length = length


def _span(first, last, origin: str | None) -> Span:
    a = first.start_pos if isinstance(first, Token) else first.span.start
    b = last.end_pos if isinstance(last, Token) else last.span.end
    return Span(a, b, origin)


def _field_token(tok: Token, origin: str | None) -> Field:
    """Split a FIELD token ``name[arg]`` into a :class:`Field`."""
    text = str(tok)
    name, arg = text, None
    bracket = text.find("[")
    if bracket >= 0:
        name = text[:bracket]
        arg = _arg_text(text[bracket + 1 : -1], tok.start_pos + bracket + 1)
    return Field(name, arg, Span(tok.start_pos, tok.end_pos, origin))


def _arg_text(raw: str, offset: int) -> str:
    if raw[:1] in ("'", '"'):
        return _unescape(raw, offset)
    return raw


class _BadQuoted:
    """A quoted token whose escapes libs rejects (error raised by its user)."""

    def __init__(self, tok: Token, err: EscapeError) -> None:
        self.tok = tok
        self.err = err


def _ok(node):
    if isinstance(node, _BadQuoted):
        raise _ParseFailure(str(node.err), node.tok.start_pos + node.err.index, 2)
    return node


def _unescape(token: str, offset: int) -> str:
    try:
        return unescape(token)
    except EscapeError as e:
        raise _ParseFailure(str(e), offset + e.index, 2) from None


@v_args(inline=True)
class _Build(Transformer):
    """Tree callbacks, applied by the LALR parser as it reduces (no tree)."""

    def __init__(self, origin: str | None) -> None:
        super().__init__()
        self.origin = origin

    # -- boolean structure -------------------------------------------------
    def or_expr(self, *items):
        return self._bool(items, Or)

    def and_expr(self, *items):
        return self._bool(items, And)

    def _bool(self, items, cls):
        children = [i for i in items if not isinstance(i, Token)]
        if len(children) == 1:
            return children[0]
        flat: list[Expr] = []
        for c in children:
            flat.append(c)
        return cls(tuple(flat), _span(items[0], items[-1], self.origin))

    def not_expr(self, *items):
        toks = [i for i in items if isinstance(i, Token)]
        child = next(i for i in items if not isinstance(i, Token))
        negate = sum(1 for t in toks if t.type in ("NOT", "NOT_PAREN")) % 2 == 1
        if not toks:
            return child
        if negate:
            return Not(child, _span(items[0], items[-1], self.origin))
        return child

    def paren(self, lpar, expr, rpar):
        return expr

    def identifier(self, tok):
        return Identifier(str(tok), Span(tok.start_pos, tok.end_pos, self.origin))

    # -- checks ------------------------------------------------------------
    def exists(self, lhs, tok):
        return Exists(lhs, _span(lhs, tok, self.origin))

    def compare(self, lhs, op, rhs):
        rhs = _ok(rhs)
        name = str(op)
        if name in LIST_OPERATORS and isinstance(rhs, Identifier):
            rhs = self._ident_list(rhs)
        return Compare(lhs, name, rhs, None, _span(lhs, rhs, self.origin))

    def compare_mod(self, lhs, op, mod, rhs):
        if isinstance(rhs, Identifier):
            rhs = self._ident_list(rhs)
        return Compare(lhs, str(op), rhs, str(mod).strip(), _span(lhs, rhs, self.origin))

    def _ident_list(self, ident: Identifier) -> ListLiteral:
        return ListLiteral((Literal(ident.name, False, ident.span),), ident.span)

    # -- operands ----------------------------------------------------------
    def field(self, tok):
        return _field_token(tok, self.origin)

    def quoted(self, tok):
        try:
            value = unescape(str(tok))
        except EscapeError as e:
            # deferred: libs swallows this error in one place (see ``list``)
            return _BadQuoted(tok, e)
        return Literal(value, True, Span(tok.start_pos, tok.end_pos, self.origin))

    def bare(self, tok):
        return Literal(str(tok), False, Span(tok.start_pos, tok.end_pos, self.origin))

    def list(self, lpar, *rest):
        items = [i for i in rest if isinstance(i, Literal | _BadQuoted)]
        rpar = rest[-1]
        if (len(items) == 1 and isinstance(items[0], _BadQuoted)
                and items[0].tok.end_pos == rpar.start_pos):
            # libs quirk (try_parse_list_expr): an escape error in the first
            # item is caught and the list is taken as empty when ")" follows
            # right after the string
            items = []
        return ListLiteral(tuple(_ok(i) for i in items), _span(lpar, rpar, self.origin))

    def list_ident(self, tok):
        return Identifier(str(tok), Span(tok.start_pos, tok.end_pos, self.origin))

    def tlist(self, lpar, *rest):
        items = tuple(_ok(i) for i in rest if i is not None and not isinstance(i, Token))
        return TransformerList(items, _span(lpar, rest[-1], self.origin))

    def xargs(self, *items):
        return tuple(_ok(i) for i in items if not isinstance(i, Token))

    def _close_arg(self, rpar: Token, xarg: Token | None) -> str | None:
        if xarg is None:
            return None
        if xarg.start_pos != rpar.end_pos:
            raise _ParseFailure("no blank is allowed before a transformer's '[' argument",
                                rpar.end_pos, xarg.start_pos - rpar.end_pos)
        return _arg_text(str(xarg)[1:-1], xarg.start_pos + 1)

    def xform(self, name, args, rpar, xarg=None):
        arg = self._close_arg(rpar, xarg)
        last = xarg if xarg is not None else rpar
        return Transform(str(name)[:-1], args, arg, _span(name, last, self.origin))

    def val(self, tok, ftok, rpar, xarg=None):
        arg = self._close_arg(rpar, xarg)
        last = xarg if xarg is not None else rpar
        return FieldValue(_field_token(ftok, self.origin), arg, _span(tok, last, self.origin))


_BUILD = _Build(None)
_LOCK = threading.Lock()


@functools.cache
def _lark() -> Lark:
    # the callbacks run as the LALR parser reduces: no intermediate tree
    return Lark(GRAMMAR.read_text(), parser="lalr", lexer="contextual",
                maybe_placeholders=True, propagate_positions=False, transformer=_BUILD)


def parse_condition(text: str, *, origin: str | None = None) -> Expr:
    """Parse ``text`` (a Falco condition) into an AST with spans.

    ``origin`` is stored in every node's :attr:`Span.origin` (the loader uses
    it to tell a macro's text from the rule's). Raises
    :class:`ConditionSyntaxError` when libs' parser would reject the text.
    """
    if not text:
        raise ConditionSyntaxError("condition is empty", text, 0)
    _check_nesting(text)
    try:
        with _LOCK:
            _BUILD.origin = origin
            return _lark().parse(text)
    except _ParseFailure as e:
        raise ConditionSyntaxError(str(e), text, e.offset, length=e.length) from None
    except UnexpectedInput as e:
        raise _syntax_error(text, e) from None
    except Exception as e:  # lark wraps callback errors in VisitError
        inner = getattr(e, "orig_exc", None)
        if isinstance(inner, _ParseFailure):
            raise ConditionSyntaxError(str(inner), text, inner.offset,
                                       length=inner.length) from None
        raise


def _check_nesting(text: str) -> None:
    depth = 0
    quote = None
    prev = ""
    for i, c in enumerate(text):
        if quote:
            if c == quote and prev != "\\":
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise ConditionSyntaxError(
                    f"expression nested too deeply (more than {MAX_NESTING} levels)", text, i)
        elif c == ")":
            depth -= 1
        prev = c


def _syntax_error(text: str, e: UnexpectedInput) -> ConditionSyntaxError:
    offset = getattr(e, "pos_in_stream", None)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            offset = len(text)
            return ConditionSyntaxError(
                "unexpected end of condition, expecting " + _expected(e.expected, e.token),
                text, offset)
        offset = tok.start_pos
        special = _explain(text, offset, str(tok), e.expected)
        if special is not None:
            message, hint = special
            return ConditionSyntaxError(message, text, offset, length=len(str(tok)), hint=hint)
        return ConditionSyntaxError(
            f"unexpected '{str(tok)[:40]}', expecting {_expected(e.expected, tok)}",
            text, offset, length=len(str(tok)))
    if isinstance(e, UnexpectedEOF):
        return ConditionSyntaxError("unexpected end of condition", text, len(text))
    if isinstance(e, UnexpectedCharacters):
        offset = e.pos_in_stream
        rest = text[offset:].split(None, 1)
        word = rest[0] if rest else text[offset:offset + 1]
        allowed = getattr(e, "allowed", None) or set()
        special = _explain(text, offset, word, allowed)
        if special is not None:
            message, hint = special
            return ConditionSyntaxError(message, text, offset, length=len(word), hint=hint)
        return ConditionSyntaxError(
            f"unexpected '{word[:40]}', expecting {_expected(allowed, None)}",
            text, offset, length=len(word))
    return ConditionSyntaxError(str(e), text, offset or 0)


_WORD_OPS = ("contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith",
             "glob", "iglob", "regex")


def _explain(text: str, offset: int, word: str, allowed) -> tuple[str, str | None] | None:
    """Friendlier messages for the common lexing dead ends."""
    for kw in ("and", "or", "not"):
        if word.startswith(kw) and (kw.upper() in allowed or "NOT" in allowed):
            after = text[offset + len(kw):offset + len(kw) + 1]
            if not after:
                return f"unexpected end of condition after '{kw}'", None
            if kw != "not" and after not in " \t\b\r\n(":
                return f"expected blank or '(' after '{kw}'", None
    if word[:1] in ("'", '"') and "QUOTED" in allowed:
        return "unterminated quoted string", f"close it with {word[0]}"
    if "STROP" in allowed:
        for op in _WORD_OPS:
            if word == op:
                return f"'{op}' needs a value after it", None
            if word.startswith(op):
                return f"expected a blank after '{op}'", None
        close = difflib.get_close_matches(word, OPERATORS, n=1, cutoff=0.75)
        if close:
            return (f"unexpected '{word[:40]}', expecting an operator",
                    f"did you mean '{close[0]}'?")
    return None


def _expected(names, tok) -> str:
    names = {n for n in names if n != "BLANK"}
    words = sorted({_TERMINAL_NAMES.get(n, n) for n in names})
    if not words:
        return "nothing more"
    if len(words) > 6:
        words = [*words[:6], "..."]
    return " or ".join(words)
