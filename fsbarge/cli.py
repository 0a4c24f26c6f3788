"""The ``fsbarge`` command. Library errors become one line on stderr and an exit code here, and only here.

Exit status: 0 success, 2 bad usage or configuration, 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__

__all__ = ["main"]

OUTCOMES = ("active", "completed", "denied", "no_active_call", "failed")
MODES = ("listen", "whisper", "barge", "customer_whisper")
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds on every backend


class UsageError(Exception):
    """Bad command line: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + error; we want one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _build_parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $FSBARGE_CONFIG, else /etc/fsbarge/fsbarge.toml)"
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --config given before the subcommand is not overwritten by this default.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)

    p = _Parser(prog="fsbarge", description="Supervisor listen / whisper / barge for FreeSWITCH, with an audit trail.")
    p.add_argument("--version", action="version", version=f"fsbarge {__version__}")
    p.add_argument("--config", metavar="PATH", default=None, help=config_help)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("run", parents=[common], help="run the daemon in the foreground (systemd runs this)")
    sub.add_parser("check-config", parents=[common], help="validate the configuration and exit")

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    dbsub.add_parser("upgrade", parents=[common], help="apply Alembic migrations to the configured database")
    dbsub.add_parser("current", parents=[common], help="print the database's migration revision")

    calls = sub.add_parser("calls", parents=[common], help="live channels as the daemon mirrors them")
    calls.add_argument("--format", choices=("table", "json"), default="table")
    calls.add_argument("--node", help="only this FreeSWITCH node")

    audit = sub.add_parser("audit", help="query the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    lst = asub.add_parser("list", parents=[common], help="interventions, newest first")
    lst.add_argument("--supervisor", metavar="EXT")
    lst.add_argument("--agent", metavar="EXT")
    lst.add_argument("--since", metavar="ISO8601", help="started at or after (UTC unless an offset is given)")
    lst.add_argument("--until", metavar="ISO8601", help="started before")
    lst.add_argument("--mode", choices=MODES, help="requested, or used at any time")
    lst.add_argument("--outcome", choices=OUTCOMES)
    lst.add_argument("--limit", type=int, default=100, help="at most this many (default 100; 0 = all)")
    lst.add_argument("--format", choices=("table", "json", "csv"), default="table")
    show = asub.add_parser("show", parents=[common], help="one intervention with its mode history")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=("table", "json"), default="table")
    return p


def _config(args: argparse.Namespace) -> Any:
    from .config import load_config, resolve_config_path

    return load_config(resolve_config_path(args.config, os.environ))


def _reader_engine(args: argparse.Namespace) -> Any:
    """An engine for reading what the daemon wrote; refuses a database that was never created."""
    from .db import open_existing

    return open_existing(_config(args).database.url)


def _cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon
    from .logs import configure_logging

    config = _config(args)
    configure_logging(config.log_level, secrets=config.all_passwords())
    daemon = Daemon(config)
    daemon.run_forever()
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ENV_DATABASE_URL, ConfigError
    from .db import DatabaseError, check_driver

    config = _config(args)
    try:
        check_driver(config.database.url)  # e.g. a PostgreSQL URL without fsbarge[postgresql]
    except DatabaseError as exc:
        key = ENV_DATABASE_URL if os.environ.get(ENV_DATABASE_URL) else "database.url"
        raise ConfigError(config.path, key, str(exc)) from None
    teams = ", ".join(t.name for t in config.teams) or "none"
    nodes = ", ".join(f"{n.name} ({n.host}:{n.port})" for n in config.nodes)
    print(f"{config.path}: OK — nodes: {nodes}; teams: {teams}")
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from .db import current_revision, make_engine, upgrade

    engine = make_engine(_config(args).database.url)
    if args.db_command == "upgrade":
        upgrade(engine)
    print(f"database at revision {current_revision(engine) or 'none'}")
    return 0


def _cmd_calls(args: argparse.Namespace) -> int:
    from .auditview import render_channels
    from .store import ChannelStore

    rows = ChannelStore(_reader_engine(args)).list(node=args.node)
    print(render_channels(rows, args.format))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from .auditview import parse_time, render_csv, render_json, render_show, render_table
    from .store import AuditStore

    if args.audit_command == "list":
        if args.limit < 0:
            raise UsageError("--limit must be 0 or more")
        try:
            since = parse_time(args.since) if args.since is not None else None
            until = parse_time(args.until) if args.until is not None else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        records = AuditStore(_reader_engine(args)).list(
            supervisor=args.supervisor,
            agent=args.agent,
            since=since,
            until=until,
            mode=args.mode,
            outcome=args.outcome,
            limit=args.limit or None,
        )
        render = {"json": render_json, "csv": render_csv, "table": render_table}[args.format]
        out = render(records)
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
        return 0
    # ids are the schema's INTEGER: 32 bits on PostgreSQL, which refuses to compare a larger number
    record = AuditStore(_reader_engine(args)).get(args.id) if 0 < args.id <= MAX_ID else None
    if record is None:
        print(f"fsbarge: no intervention with id {args.id}", file=sys.stderr)
        return 1
    print(render_show(record, args.format))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError
    from .db import DatabaseError

    try:
        args = _build_parser().parse_args(argv)
        handler = {
            "run": _cmd_run,
            "check-config": _cmd_check_config,
            "db": _cmd_db,
            "calls": _cmd_calls,
            "audit": _cmd_audit,
        }[args.command]
        return handler(args)
    except UsageError as exc:
        print(f"fsbarge: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"fsbarge: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"fsbarge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fsbarge audit list | head`
        return 0
    except Exception as exc:  # never a traceback for an operator
        print(f"fsbarge: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
