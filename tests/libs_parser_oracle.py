"""A line-by-line Python reading of libs' recursive-descent filter parser.

Test oracle only: ``falcosecurity/libs`` ``userspace/libsinsp/filter/parser.cpp``
(main 48dfd53c) transcribed function by function, accept/reject only (no
AST), so that the lark grammar of ``fcap.analyze.condition`` can be compared
with it on many generated strings (``tests/test_condition_parser.py``).
"""

from __future__ import annotations

import re

from fcap.analyze.condition.escaping import EscapeError, unescape

_NOT_BLANK = re.compile(r"not[ \t\n\r\f\v]+")
_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_FIELDNAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_FIELDARG = re.compile(r"[^\]\[\"' \t\n\r\f\v]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_NUMBER = re.compile(r"[+\-]?[0-9]+\.?[0-9]*([eE][+\-][0-9]+)?")
_BARESTR = re.compile(r"[^()\"' \t\n\r\f\v=,]+")

_UNARY = ["exists"]
_NUM_OPS = ["<=", "<", ">=", ">"]
_STR_OPS = ["==", "=", "!=", "glob ", "iglob ", "contains ", "icontains ", "bcontains ",
            "startswith ", "bstartswith ", "endswith ", "regex "]
_MODIFIERS = ["oneof ", "anyof ", "allof "]
_LIST_OPS = ["intersects", "in", "pmatch"]
_XFORMS = ["tolower(", "toupper(", "b64(", "basename(", "len(", "join(", "concat(", "getopt("]


class Reject(Exception):
    pass


class LibsParser:
    def __init__(self, text: str, max_depth: int = 100) -> None:
        self.s = text
        self.i = 0
        self.depth = 0
        self.max_depth = max_depth
        self.last = ""

    # -- helpers ------------------------------------------------------------
    def guard(self):
        parser = self

        class _G:
            def __enter__(self):
                parser.depth += 1
                if parser.depth >= parser.max_depth:
                    raise Reject("exceeded max depth")

            def __exit__(self, *a):
                parser.depth -= 1

        return _G()

    def blank(self) -> bool:
        found = False
        while self.i < len(self.s) and self.s[self.i] in " \t\b\r\n":
            self.i += 1
            found = True
        return found

    def rgx(self, r: re.Pattern) -> bool:
        m = r.match(self.s, self.i)
        if m and m.end() > self.i:
            self.last = m.group(0)
            self.i = m.end()
            return True
        return False

    def lit(self, t: str) -> bool:
        if self.s.startswith(t, self.i):
            self.last = t
            self.i += len(t)
            return True
        return False

    def lit_list(self, ts) -> bool:
        return any(self.lit(t) for t in ts)

    def op_list(self, ops) -> bool:
        for op in ops:
            if not op.endswith(" "):
                if self.lit(op):
                    return True
                continue
            saved = (self.i, self.last)
            if self.lit(op.strip()):
                if self.blank():
                    return True
                self.i, self.last = saved
        return False

    def quoted(self) -> bool:
        if self.i >= len(self.s) or self.s[self.i] not in "'\"":
            return False
        delim = self.s[self.i]
        prev = "\\"
        j = self.i
        tok = ""
        while j < len(self.s):
            c = self.s[j]
            if c == delim and prev != "\\":
                tok += c
                self.i = j + 1
                try:
                    self.last = unescape(tok)
                except EscapeError as e:
                    raise Reject(str(e)) from None
                return True
            prev = c
            tok += c
            j += 1
        return False

    # -- grammar --------------------------------------------------------------
    def parse(self) -> None:
        if not self.s:
            raise Reject("empty")
        self.parse_or()
        if self.i != len(self.s):
            raise Reject("unexpected token")

    def parse_or(self) -> None:
        with self.guard():
            self.blank()
            self.parse_and()
            self.blank()
            while self.lit("or"):
                if not self.blank():
                    if self.lit("("):
                        self.embedded()
                    else:
                        raise Reject("expected blank or '(' after 'or'")
                else:
                    self.parse_and()
                self.blank()

    def parse_and(self) -> None:
        with self.guard():
            self.blank()
            self.parse_not()
            self.blank()
            while self.lit("and"):
                if not self.blank():
                    if self.lit("("):
                        self.embedded()
                    else:
                        raise Reject("expected blank or '(' after 'and'")
                else:
                    self.parse_not()
                self.blank()

    def parse_not(self) -> None:
        with self.guard():
            self.blank()
            while self.rgx(_NOT_BLANK):
                pass
            if self.lit("not("):
                self.embedded()
            else:
                self.check()

    def embedded(self) -> None:
        with self.guard():
            self.blank()
            self.parse_or()
            self.blank()
            if not self.lit(")"):
                raise Reject("expected ')'")

    def check(self) -> None:
        with self.guard():
            self.blank()
            if self.lit("("):
                self.embedded()
                return
            if self.rgx(_FIELDNAME):
                self.field_rest()
                self.condition()
                return
            if self.lit_list(_XFORMS):
                self.blank()
                self.xform_rest()
                self.condition()
                return
            if self.rgx(_IDENTIFIER):
                return
            raise Reject("expected a '(' token, a field check, or an identifier")

    def field_rest(self) -> None:
        with self.guard():
            self.opt_arg()

    def opt_arg(self) -> None:
        if not self.lit("["):
            return
        if not self.quoted() and not self.rgx(_FIELDARG):
            raise Reject("expected a valid field argument")
        if not self.lit("]"):
            raise Reject("expected ']'")

    def xform_rest(self) -> None:
        with self.guard():
            self.blank()
            while True:
                self.xform_arg()
                self.blank()
                if not self.lit(","):
                    break
            self.blank()
            if not self.lit(")"):
                raise Reject("expected ')' closing the transformer")
            self.opt_arg()

    def xform_arg(self) -> None:
        with self.guard():
            self.blank()
            if self.rgx(_HEX) or self.rgx(_NUMBER):
                return
            if self.quoted():
                return
            if self.lit("("):
                self.tlist()
                return
            if self.lit_list(_XFORMS):
                self.xform_rest()
                return
            if self.rgx(_FIELDNAME):
                self.field_rest()
                return
            raise Reject("expected field transformer argument")

    def tlist(self) -> None:
        self.blank()
        if self.lit(")"):
            return
        self.tlist_arg()
        self.blank()
        while self.lit(","):
            self.blank()
            self.tlist_arg()
            self.blank()
        if not self.lit(")"):
            raise Reject("expected ')'")

    def tlist_arg(self) -> None:
        if self.rgx(_FIELDNAME):
            self.field_rest()
            return
        if self.lit_list(_XFORMS):
            self.blank()
            self.xform_rest()
            return
        if self.quoted():
            return
        if self.rgx(_HEX) or self.rgx(_NUMBER):
            return
        raise Reject("expected transformer list argument")

    def condition(self) -> None:
        with self.guard():
            self.blank()
            if self.op_list(_UNARY):
                return
            self.blank()
            if self.op_list(_NUM_OPS):
                self.num_value()
            elif self.op_list(_STR_OPS):
                op = self.last
                had_blank = op[0].isalpha() or self.blank()
                saved = (self.i, self.last)
                if (had_blank and self.op_list(_MODIFIERS) and self.list_follows()
                        and not self.bool_kw_follows()):
                    self.list_value()
                else:
                    self.i, self.last = saved
                    self.str_value(False)
            elif self.op_list(_LIST_OPS):
                self.list_or_xform()
            else:
                raise Reject("expected a valid check operator")

    def list_follows(self) -> bool:
        if self.s.startswith("(", self.i):
            return True
        return _IDENTIFIER.match(self.s, self.i) is not None

    def bool_kw_follows(self) -> bool:
        rest = self.s[self.i:]
        for kw in ("and", "or", "not"):
            if rest.startswith(kw) and (len(rest) == len(kw) or not rest[len(kw)].isalnum()):
                return True
        return False

    def num_value(self) -> None:
        with self.guard():
            self.blank()
            if self.xform_or_val():
                return
            if self.rgx(_HEX) or self.rgx(_NUMBER):
                return
            raise Reject("expected a number value")

    def str_value(self, no_xform: bool) -> None:
        with self.guard():
            self.blank()
            if not no_xform and self.xform_or_val():
                return
            if self.quoted() or self.rgx(_BARESTR):
                return
            raise Reject("expected a string value")

    def try_list(self) -> bool:
        if not self.lit("("):
            return False
        should_be_empty = False
        self.blank()
        try:
            self.str_value(True)
        except Reject:
            should_be_empty = True
        if not should_be_empty:
            self.blank()
            while self.lit(","):
                self.str_value(True)
                self.blank()
        if not self.lit(")"):
            raise Reject("expected ')'")
        return True

    def list_value(self) -> None:
        with self.guard():
            self.blank()
            if self.try_list():
                return
            if self.rgx(_IDENTIFIER):
                return
            raise Reject("expected a list or an identifier")

    def list_or_xform(self) -> None:
        with self.guard():
            self.blank()
            if self.try_list():
                return
            if self.xform_or_val():
                return
            if self.rgx(_IDENTIFIER):
                return
            raise Reject("expected a list, an identifier, or a transformer")

    def xform_or_val(self) -> bool:
        with self.guard():
            self.blank()
            if self.lit("val("):
                self.blank()
                if not self.rgx(_FIELDNAME):
                    raise Reject("expected a field within val")
                self.field_rest()
                self.blank()
                if not self.lit(")"):
                    raise Reject("expected ')'")
                self.opt_arg()
                return True
            if self.lit_list(_XFORMS):
                self.blank()
                self.xform_rest()
                return True
            return False


def libs_accepts(text: str, max_depth: int = 100) -> bool:
    try:
        LibsParser(text, max_depth).parse()
    except Reject:
        return False
    return True
