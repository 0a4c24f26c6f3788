"""Structured logging for fsbarge (structlog).

Output: one JSON object per line when the stream is not a terminal (systemd/journald, files, pipes),
a readable coloured console rendering on a terminal. Every line has ``timestamp`` (ISO 8601 UTC, ``Z``),
``level`` and ``event``; lines from a named logger have ``logger``. Records from the standard library's
``logging`` (greenswitch, SQLAlchemy, Alembic, gevent) go through the same rendering and redaction.

Conventions for callers:

- ``log = get_logger(__name__)`` at module level; the event is a short fixed phrase
  (``"eavesdrop started"``), the details are key/value pairs, never formatted into the event.
- Every line about a call binds ``node`` (the FreeSWITCH node name) and ``uuid`` (the channel's
  Unique-ID); lines about an intervention also bind ``supervisor`` and ``agent``:
  ``clog = log.bind(node=node, uuid=uuid)``. On hot paths bind once and reuse the bound logger: a
  bound logger whose level is filtered out costs a single no-op call.
- Exceptions: ``log.exception("...")`` or ``exc_info=True``; the traceback is rendered as text (key
  ``exception``) before redaction, so a secret inside an exception message is redacted too.

Redaction (the ESL password never appears in a log line): a value whose key looks secret (``password``,
``passwd``, ``secret``, ``token``, ``credential``, ``api_key``, at any depth in nested dicts) becomes
``"***"``, and any occurrence of a registered secret string (``configure_logging(secrets=...)``, e.g.
``Config.all_passwords()``) inside any rendered value, event text, nested container, object ``repr``
or exception text becomes ``"***"``. Registered secrets shorter than 4 characters are not substituted
inside text: replacing e.g. ``"1"`` everywhere would destroy every uuid and number in the logs (the
key-based rule still hides such a password).

`configure_logging` may be called again at any time (tests do); loggers obtained from `get_logger`
follow the latest configuration.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "configure_logging", "get_logger"]

REDACTED = "***"
MIN_SECRET_LEN = 4

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

_SECRET_KEY = re.compile(r"passw(?:or)?d|secret|token|credential|api_?key|private_?key", re.IGNORECASE)

# The stdlib handler installed by the last configure_logging(), so that a second call replaces it.
_stdlib_handler: logging.Handler | None = None


def configure_logging(
    level: str = "info",
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog (and route the stdlib ``logging`` root through it).

    ``level``: debug, info, warning, error or critical (case-insensitive). ``stream``: where lines go
    (default: ``sys.stdout`` at call time). ``json``: force JSON lines (True) or the console rendering
    (False); by default JSON unless ``stream`` is a terminal. ``secrets``: strings never to be logged.
    """
    min_level = _level_number(level)
    out = sys.stdout if stream is None else stream
    as_json = not _isatty(out) if json is None else json
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
    redact = _Redactor(secrets)
    # Everything that turns data into text (stack, traceback) runs before redaction.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        context_class=dict,
        logger_factory=_NamedWriteLoggerFactory(out),
        # Not cached, so that a later configure_logging() reaches module-level loggers too; hot paths
        # bind once (see the module docstring) and the bound logger is as fast as a cached one.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, min_level, shared, redact, renderer)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (``debug``/``info``/``warning``/``error``/``exception``/``bind``...).

    ``name`` (usually ``__name__``) appears as the ``logger`` key.
    """
    if name is None:
        return structlog.get_logger()
    return structlog.get_logger(name)  # passed to _NamedWriteLoggerFactory


# ------------------------------------------------------------------------------------------ internals


def _level_number(level: str | int) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.strip().lower() in _LEVELS:
        return _LEVELS[level.strip().lower()]
    raise ValueError(f"unknown log level {level!r}; use debug, info, warning, error or critical")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _NamedWriteLogger(structlog.WriteLogger):
    name: str | None = None


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        logger = _NamedWriteLogger(self._file)
        if args and isinstance(args[0], str):
            logger.name = args[0]
        return logger


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


class _Redactor:
    """The redaction processor: secret-looking keys and registered secret strings become ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        usable = sorted({s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN},
                        key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, usable))) if usable else None
        self._secret_keys: dict[str, bool] = {}

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {self._text(k) if isinstance(k, str) else k: self._value(k, v) for k, v in event_dict.items()}

    def _is_secret_key(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        known = self._secret_keys.get(key)
        if known is None:
            known = self._secret_keys[key] = _SECRET_KEY.search(key) is not None
        return known

    def _text(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def _value(self, key: Any, value: Any) -> Any:
        if value is None:
            return None
        if self._is_secret_key(key):
            return REDACTED
        if isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Mapping):
            return {
                self._text(k) if isinstance(k, str) else k: self._value(k, v) for k, v in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self._value(None, v) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray)):
            return self._text(bytes(value).decode("utf-8", "backslashreplace"))
        # Anything else (exceptions, objects) is rendered here so its text can be redacted.
        return self._text(repr(value))


def _route_stdlib(
    stream: TextIO, min_level: int, shared: list[Processor], redact: _Redactor, renderer: Processor
) -> None:
    """Send stdlib ``logging`` records through the same processors to the same stream."""
    global _stdlib_handler
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        )
    )
    root.addHandler(handler)
    root.setLevel(min_level)
    _stdlib_handler = handler
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(min_level, logging.WARNING))
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, _AlembicPreamble) for f in migration.filters):
        migration.addFilter(_AlembicPreamble())


# Library loggers whose INFO lines say nothing to an operator: Alembic announces each of its seven
# autogenerate plugins ("setup plugin alembic.autogenerate.*") whenever migrations are loaded.
QUIET_LIBRARY_LOGGERS = ("alembic.runtime.plugins",)


class _AlembicPreamble(logging.Filter):
    """Drops the two lines Alembic prints on every start ("Context impl SQLiteImpl.", "Will assume
    transactional DDL."); its "Running upgrade 0005 -> 0006" lines, which say something, stay."""

    PREFIXES = ("Context impl ", "Will assume ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.PREFIXES))
