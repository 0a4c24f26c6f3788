"""The ``fsbarge`` command. Library errors become one line on stderr and an exit code here, and only here.

Exit status: 0 success, 2 bad usage or configuration, 1 anything else.

By role: ``parser`` (the command line, built lazily), ``sources`` (where a command's database and
configuration come from), ``read`` (the read commands, kept light to start fast), ``admin`` (the
commands that run or change things), ``errors``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fsbarge.cli.errors import CommandError, UsageError
from fsbarge.cli.parser import _build_parser, _resolve_times

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _handler(args: argparse.Namespace) -> Handler:
    """The function of the (sub-)command the arguments name."""
    from fsbarge.cli import admin, read

    whole: dict[str, Handler] = {
        "run": admin.run, "check-config": admin.check_config, "db": admin.db,
        "calls": read.calls, "report": read.report, "status": read.status,
    }
    if args.command in whole:
        return whole[args.command]
    if args.command == "help" and args.help_command is None:
        return read.help_usage
    by_sub: dict[str, dict[str, Handler]] = {
        "audit": {"list": read.audit_list, "show": read.audit_show, "stats": read.audit_stats, "verify": read.audit_verify,
                  "head": read.audit_head, "quarantine": admin.audit_quarantine},
        "help": {"list": read.help_list, "request": admin.help_request},
        "webhooks": {"list": read.webhooks_list, "retry": admin.webhooks_retry},
    }
    return by_sub[args.command][getattr(args, f"{args.command}_command")]


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class of an fsbarge module, if that module was imported at all: a command that
    never loaded the configuration (a read command given --database) cannot have raised its
    error, and main() need not import it just to name it."""
    loaded = sys.modules.get(f"{__name__.rpartition('.')[0]}.{module}")
    return getattr(loaded, name, None) if loaded is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
        _resolve_times(args)
        return _handler(args)(args)
    except UsageError as exc:
        print(f"fsbarge: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"fsbarge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fsbarge audit list | head`
        return 0
    except Exception as exc:  # never a traceback for an operator
        config_error, database_error = _loaded("config", "ConfigError"), _loaded("db.errors", "DatabaseError")
        if config_error is not None and isinstance(exc, config_error):
            print(f"fsbarge: {exc}", file=sys.stderr)
            return 2
        if database_error is not None and isinstance(exc, database_error):
            print(f"fsbarge: {exc}", file=sys.stderr)
            return 1
        print(f"fsbarge: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
