"""The command line: argparse built lazily (only the sub-parsers the arguments name: start-up),
one-line usage errors, and the argument types and shared options of the commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from fsbarge import __version__
from fsbarge.cli.texts import (
    HELP_DESCRIPTION, HELP_EPILOG, HELP_LIST_EPILOG, LIST_EPILOG, MAIN_EPILOG, REPORT_EPILOG, STATS_EPILOG,
)
from fsbarge.core.terms import HELP_OUTCOMES, HISTORY_MODES, OUTCOMES  # light: no third-party imports
from fsbarge.cli.errors import UsageError
from fsbarge.cli.sources import ENV_DATABASE_URL

TABLE_PAGE = 50  # rows `audit list` shows as a table unless --limit says otherwise


def _columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (and with it bz2, lzma, ...):
    argparse asks for the width on every add_argument, and that import was ~5 ms of each command."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, at the terminal's width as argparse measures it (see _columns)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _RawFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs (examples) kept as written."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # argparse prints usage + error; we want one line
        if self.prog == "fsbarge help":  # a newcomer looking for help on fsbarge itself lands here
            raise UsageError(f"{message} (`fsbarge help` is about agents' help requests; help on fsbarge: `fsbarge --help`)")
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# The commands and their sub-commands, as _build_parser makes them (tests/test_cli_qa.py checks).
_COMMANDS: dict[str, tuple[str, ...]] = {
    "run": (), "check-config": (), "db": ("upgrade", "current", "repair"), "calls": (),
    "audit": ("list", "stats", "show", "verify", "head", "quarantine"), "help": ("list", "request"), "status": (),
    "webhooks": ("list", "retry"), "report": (),
}


def _wanted(argv: Sequence[str] | None) -> Any:
    """Which sub-parsers to build: those on the path the arguments plainly name (`audit list ...`),
    or all of them when they name none plainly (an option first, a typo, nothing). argparse makes
    some 30 parsers otherwise, 15-30 ms of every command's start, to use one of them; what the
    chosen one parses and prints is the same either way (a test compares)."""
    path: tuple[str, ...] = ()
    if argv and argv[0] in _COMMANDS:
        path = (argv[0],)
        if len(argv) > 1 and argv[1] in _COMMANDS[argv[0]]:
            path += (argv[1],)

    def want(*names: str) -> bool:
        return names[: len(path)] == path[: len(names)]

    return want


def _build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (given the arguments) only the part they use (see _wanted)."""
    want = _wanted(argv)
    config_help = "configuration file (default: $FSBARGE_CONFIG, else /etc/fsbarge/fsbarge.toml)"
    common = _Parser(add_help=False)
    # SUPPRESS: a --config given before the subcommand is not overwritten by this default.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    # read commands: a database URL is all they need (a QA account may not read the daemon's config)
    reader = _Parser(add_help=False, parents=[common])
    reader.add_argument(
        "--database",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"database to read (default: ${ENV_DATABASE_URL}, else [database] url of the configuration)",
    )

    p = _Parser(
        prog="fsbarge",
        description="Supervisor listen / whisper / barge for FreeSWITCH, with an audit trail.",
        epilog=MAIN_EPILOG,
        formatter_class=_RawFormatter,
    )
    p.add_argument("--version", action="version", version=f"fsbarge {__version__}")
    p.add_argument("--config", metavar="PATH", default=None, help=config_help)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    if want("run"):
        sub.add_parser("run", parents=[common], help="run the daemon in the foreground (systemd runs this)")
    if want("check-config"):
        sub.add_parser("check-config", parents=[common], help="validate the configuration and exit")

    if want("db"):
        db = sub.add_parser("db", help="database maintenance")
        dbsub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
        # like the read commands: a database URL is all it needs (no nodes, teams or ESL password)
        target = _Parser(add_help=False, parents=[common])
        target.add_argument(
            "--database",
            metavar="URL",
            default=argparse.SUPPRESS,
            help=f"database to migrate (default: ${ENV_DATABASE_URL}, else [database] url of the configuration)",
        )
        if want("db", "upgrade"):
            dbsub.add_parser("upgrade", parents=[target], help="apply Alembic migrations to the database (creates a SQLite file)")
        if want("db", "current"):
            dbsub.add_parser("current", parents=[target], help="print the database's migration revision")
        if want("db", "repair"):
            dbsub.add_parser(
                "repair", parents=[target],
                help="recreate tables missing from a damaged database, empty (audit verify then reports what was lost)",
            )

    if want("calls"):
        calls = sub.add_parser("calls", parents=[reader], help="live channels as the daemon mirrors them")
        calls.add_argument("--format", choices=("table", "json"), default="table")
        calls.add_argument("--node", help="only this FreeSWITCH node")
    if want("audit"):
        audit = sub.add_parser("audit", help="query the audit trail")
        asub = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
        if want("audit", "list"):
            lst = asub.add_parser("list", parents=[reader], help="interventions, newest first", epilog=LIST_EPILOG,
                                  formatter_class=_RawFormatter)
            _add_filters(lst)
            lst.add_argument(
                "--limit",
                type=_count,
                default=None,
                help=f"at most this many (default: all for csv and json, {TABLE_PAGE} for the table; 0 = all)",
            )
            lst.add_argument("--offset", type=_count, default=0, help="skip this many first (newest) rows")
            lst.add_argument("--format", choices=("table", "json", "csv"), default="table")
            _add_tz(lst)
        if want("audit", "stats"):
            stats = asub.add_parser("stats", parents=[reader], help="interventions, outcomes, refusals and time per group",
                                    epilog=STATS_EPILOG, formatter_class=_RawFormatter)
            stats.add_argument("--by", choices=("agent", "supervisor", "team", "day"), required=True,
                               help="one row per agent, supervisor, team (recorded with each intervention) or day (in --tz)")
            _add_filters(stats)
            stats.add_argument("--format", choices=("table", "json", "csv"), default="table")
            _add_tz(stats, days=True)
        if want("audit", "show"):
            show = asub.add_parser("show", parents=[reader], help="one intervention with its mode history")
            show.add_argument("id", type=int)
            show.add_argument("--format", choices=("table", "json"), default="table")
            _add_tz(show)
        if want("audit", "verify"):
            verify = asub.add_parser("verify", parents=[reader], help="recompute the audit hash chain and check every record against it (exit 1 on a mismatch)")
            verify.add_argument("--head", metavar="HASH", type=_hash_arg, help="a head noted earlier (fsbarge audit head): must still be in the chain")
        if want("audit", "head"):
            asub.add_parser("head", parents=[reader], help="print the audit chain's head hash, to note outside the system")
        if want("audit", "quarantine"):
            quarantine = asub.add_parser("quarantine", help="audit changes the database refused, set aside beside the journal")
            qsub = quarantine.add_subparsers(dest="quarantine_command", required=True, parser_class=_Parser)
            qlist = qsub.add_parser("list", parents=[common], help="what is set aside and why (the journal's path comes from --config)")
            qlist.add_argument("--format", choices=("table", "json"), default="table")
            qsub.add_parser("retry", parents=[common], help="apply what is set aside, once the cause is fixed; what fails again stays (exit 1)")

    if want("help"):
        helpp = sub.add_parser(
            "help", help="agents' help requests (*9 on the phone, or `help request`): list them, raise one",
            description=HELP_DESCRIPTION,
            epilog=HELP_EPILOG, formatter_class=_RawFormatter,
        )
        hsub = helpp.add_subparsers(dest="help_command", metavar="{list,request}", parser_class=_Parser)
        helpp.set_defaults(show_help=helpp.format_help)
        if want("help", "list"):
            hlist = hsub.add_parser("list", parents=[reader], help="help requests, newest first", epilog=HELP_LIST_EPILOG,
                                    formatter_class=_RawFormatter)
            hlist.add_argument("--agent", metavar="EXT", help="only requests of this agent's extension, e.g. 1000")
            hlist.add_argument("--supervisor", metavar="EXT", help="only requests this supervisor's extension answered, e.g. 1002")
            hlist.add_argument("--since", metavar="ISO8601", type=_time_arg,
                               help="requested at or after, e.g. 2026-11-01 or 2026-11-01T08:00+01:00 (in --tz unless an offset is given)")
            hlist.add_argument("--until", metavar="ISO8601", type=_time_arg, help="requested before (exclusive), e.g. 2026-12-01")
            hlist.add_argument("--outcome", choices=(*HELP_OUTCOMES, "ringing"))
            hlist.add_argument("--node", help="only this FreeSWITCH node")
            hlist.add_argument("--limit", type=_count, default=None, help="at most this many (default: all; 0 = all)")
            hlist.add_argument("--offset", type=_count, default=0, help="skip this many first (newest) rows")
            hlist.add_argument("--format", choices=("table", "json", "csv"), default="table")
            _add_tz(hlist)
        if want("help", "request"):
            hreq = hsub.add_parser("request", parents=[common], help="summon a supervisor into an agent's call, as the agent's *9 does")
            hreq.add_argument("--agent", metavar="EXT", required=True)
            hreq.add_argument("--reason", metavar="TEXT", help="why (recorded with the request)")

    if want("status"):
        status = sub.add_parser("status", parents=[reader], help="daemon, nodes and who is monitoring whom now (exit 0 healthy, 1 degraded, 3 not running)")
        status.add_argument("--format", choices=("table", "json"), default="table")
        status.add_argument("--watch", action="store_true", help="redraw every second until interrupted")
    if want("webhooks"):
        hooks = sub.add_parser("webhooks", help="the webhook outbox: what was delivered, what waits, what failed")
        hsub = hooks.add_subparsers(dest="webhooks_command", required=True, parser_class=_Parser)
        if want("webhooks", "list"):
            hlist = hsub.add_parser("list", parents=[reader], help="deliveries, newest first")
            hlist.add_argument("--state", choices=("pending", "failed", "delivered"))
            hlist.add_argument("--limit", type=_count, default=None, help="at most this many (default: all)")
            hlist.add_argument("--format", choices=("table", "json"), default="table")
        if want("webhooks", "retry"):
            hretry = hsub.add_parser("retry", parents=[reader], help="a failed or pending delivery goes back to pending, due now")
            hretry.add_argument("id", type=int)

    if want("report"):
        report = sub.add_parser("report", parents=[reader], help="write a self-contained HTML report with charts",
                                epilog=REPORT_EPILOG, formatter_class=_RawFormatter)
        _add_filters(report)
        report.add_argument("-o", "--output", metavar="FILE.html", required=True, help="where to write it (- for stdout)")
        _add_tz(report, days=True)
    return p


def _count(text: str) -> int:
    """argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a whole number, 0 or more") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: must be 0 or more")
    return value


def _hash_arg(text: str) -> str:
    """argparse type: a SHA-256 hex digest."""
    value = text.strip().lower()
    if len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise argparse.ArgumentTypeError(f"invalid hash {text!r}: expected 64 hex digits (fsbarge audit head)")
    return value


def _time_arg(text: str) -> Any:
    """argparse type: an ISO 8601 date or time, as typed (naive, or with its offset): read in --tz
    once every argument is known (_resolve_times)."""
    from fsbarge.read.auditview import parse_time

    try:
        return parse_time(text, keep_offset=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """The audit filters shared by `audit list`, `audit stats` and `report` (they combine with AND)."""
    parser.add_argument("--supervisor", metavar="EXT", help="only this supervisor's extension, e.g. 1002")
    parser.add_argument("--agent", metavar="EXT", help="only interventions on this agent's extension, e.g. 1000")
    parser.add_argument("--since", metavar="ISO8601", type=_time_arg,
                        help="started at or after, e.g. 2026-11-01 or 2026-11-01T08:00+01:00 (in --tz unless an offset is given)")
    parser.add_argument("--until", metavar="ISO8601", type=_time_arg, help="started before (exclusive), e.g. 2026-12-01")
    parser.add_argument("--mode", choices=HISTORY_MODES, help="requested, or used at any time (unknown: a gap in the history)")
    parser.add_argument("--outcome", choices=OUTCOMES)
    parser.add_argument("--node", help="only this FreeSWITCH node (the agent's), e.g. pbx1")


def _add_tz(parser: argparse.ArgumentParser, *, days: bool = False) -> None:
    what = "times and days" if days else "times"
    parser.add_argument(
        "--tz", metavar="ZONE", default="UTC",
        help=f"{what} of the table{' and the report' if days else ''} in this zone: UTC (default), local or a name "
             "such as Europe/Paris; also the zone of --since/--until without an offset (JSON and CSV times stay UTC)",
    )


def _resolve_times(args: argparse.Namespace) -> None:
    """--tz becomes a humantime.Zone (args.zone) and --since/--until naive UTC, read in that zone
    when they carry no offset; a period that ends before it starts is a usage error."""
    from fsbarge.read.humantime import UTC, zone

    try:
        args.zone = zone(args.tz) if getattr(args, "tz", None) else UTC
    except ValueError as exc:
        raise UsageError(f"--tz: {exc}") from None
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None:
        args.since = since = args.zone.to_utc(since)
    if until is not None:
        args.until = until = args.zone.to_utc(until)
    if since is not None and until is not None and since >= until:
        from fsbarge.read.auditview import iso

        raise UsageError(f"--since {iso(since)} is not before --until {iso(until)}: nothing can match (--until is exclusive)")

