"""Everything that arrives over HTTP is cleaned here once, before any view reads it.

- Path ids: ASCII digits within the range of an id column (`int` in every route means this
  converter). A larger number or a non-ASCII digit (``١٢``, ``²``) simply names no record: 404.
  `parse_id` applies the same rule to ids in query strings (the Twilio status callback's ``ob``).
- String path segments never match control characters (404).
- Form and query values (`CleanRequest`): Unicode NFC, line ends as ``\\n``, and control characters
  removed (form values keep tab and newline, query values keep neither). A NUL byte, which
  PostgreSQL cannot store and no person types, never reaches a view, a log line or the database.
  The values as received stay in `request.raw_form`: Twilio signs those.
- An ``X-Request-Id`` header that is not a plain id (at most 36 letters, digits, ``-``, ``_``,
  ``.``) is dropped, so a fresh one is made: it is stored with every audit row (36 characters on
  PostgreSQL) and written to logs.

Rules that depend on the field (invisible-only text, text-direction controls in a name) are the
forms' (`recovery/web/forms.py: Form`)."""
from __future__ import annotations

import re
import unicodedata

from flask import Flask, Request
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError
from werkzeug.utils import cached_property

# Ids are INTEGER columns (32-bit on PostgreSQL; SQLite stops at 2^63-1).
MAX_ID = 2**31 - 1
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_DROP_ALL = dict.fromkeys(_CONTROLS)
_DROP_KEEP_LINES = {k: v for k, v in _DROP_ALL.items() if chr(k) not in "\t\n"}


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,36}")


def parse_id(text: str | None) -> int | None:
    """The id written in `text` (ASCII digits, 1..MAX_ID), or None."""
    if not text or len(text) > len(str(MAX_ID)) or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def clean_text(value: str, *, multiline: bool) -> str:
    """NFC, ``\\n`` line ends, no control characters (tab and newline kept when `multiline`)."""
    if value.isascii() and value.isprintable():
        return value  # the common case, untouched
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = unicodedata.normalize("NFC", value)
    return value.translate(_DROP_KEEP_LINES if multiline else _DROP_ALL)


def _cleaned(values: MultiDict, *, multiline: bool) -> ImmutableMultiDict:
    return ImmutableMultiDict([(clean_text(k, multiline=False), clean_text(v, multiline=multiline))
                               for k, v in values.items(multi=True)])


class CleanRequest(Request):
    def __init__(self, environ, *args, **kwargs) -> None:
        rid = environ.get("HTTP_X_REQUEST_ID")
        if rid is not None and not _REQUEST_ID.fullmatch(rid):
            del environ["HTTP_X_REQUEST_ID"]
        super().__init__(environ, *args, **kwargs)

    def _load_form_data(self) -> None:
        if "form" in self.__dict__:
            return
        super()._load_form_data()
        d = self.__dict__
        d["raw_form"] = d["form"]
        d["form"] = _cleaned(d["form"], multiline=True)

    @cached_property
    def raw_form(self) -> ImmutableMultiDict:
        """The form exactly as received (what a webhook signature covers)."""
        self._load_form_data()
        return self.__dict__["raw_form"]

    @cached_property
    def args(self) -> ImmutableMultiDict:  # type: ignore[override]
        return _cleaned(Request.args.fget(self), multiline=False)  # type: ignore[attr-defined]


class IdConverter(IntegerConverter):
    """`<int:…>` in every route: an id an id column can hold, written in ASCII digits."""
    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits: int = 0, min: int | None = 1, max: int | None = MAX_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str):
        if len(value) > len(str(self.max or MAX_ID)):
            raise ValidationError()
        return super().to_python(value)


class SegmentConverter(UnicodeConverter):
    """`<name>` path segments: one segment, never a control character."""

    def __init__(self, map, *args, **kwargs) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00-\x1f\x7f]", 1)


def init_app(app: Flask) -> None:
    """Before any route is added: the converters apply when a rule is compiled."""
    app.request_class = CleanRequest
    app.url_map.converters.update(int=IdConverter, default=SegmentConverter, string=SegmentConverter)
