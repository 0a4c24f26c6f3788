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

from .terms import HELP_OUTCOMES, HISTORY_MODES, OUTCOMES  # noqa: E402 - light: no third-party imports
from .clitext import (  # noqa: E402
    HELP_DESCRIPTION, HELP_EPILOG, HELP_LIST_EPILOG, LIST_EPILOG, MAIN_EPILOG, REPORT_EPILOG, STATS_EPILOG,
)
TABLE_PAGE = 50  # rows `audit list` shows as a table unless --limit says otherwise
ENV_DATABASE_URL = "FSBARGE_DATABASE_URL"
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds on every backend


class UsageError(Exception):
    """Bad command line: exit status 2."""


class CommandError(Exception):
    """A command that could not do its work (e.g. write its output): exit status 1."""


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
    from .auditview import parse_time

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
    from .humantime import UTC, zone

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
        from .auditview import iso

        raise UsageError(f"--since {iso(since)} is not before --until {iso(until)}: nothing can match (--until is exclusive)")


def _filter(args: argparse.Namespace) -> Any:
    from .queries import AuditFilter

    return AuditFilter(
        supervisor=args.supervisor,
        agent=args.agent,
        since=args.since,
        until=args.until,
        mode=args.mode,
        outcome=args.outcome,
        node=args.node,
    )


def _config(args: argparse.Namespace) -> Any:
    from .config import load_config, resolve_config_path

    return load_config(resolve_config_path(args.config, os.environ))


def _database_url(args: argparse.Namespace) -> str:
    """--database, else $FSBARGE_DATABASE_URL, else the configuration's [database] url."""
    return _database_source(args)[0]


def _database_source(args: argparse.Namespace) -> tuple[str, str | None, str]:
    """(url, the configuration file it came from or None, the key that set it).

    From a configuration file only ``[database] url`` is read: the rest (nodes, teams, the ESL
    password) is for `run` and `check-config` to validate."""
    url = getattr(args, "database", None)
    if url:
        return url, None, "--database"
    url = os.environ.get(ENV_DATABASE_URL, "").strip()
    if url:
        return url, None, ENV_DATABASE_URL
    from .paths import resolve_config_path
    from .quickconfig import database_url

    path = resolve_config_path(args.config, os.environ)
    url = database_url(path, os.environ)  # a plainly valid file, read without the configuration module
    if url is not None:
        return url, path, "database.url"
    from .config import ConfigError, load_database_url

    try:
        return load_database_url(path), path, "database.url"
    except ConfigError as exc:
        raise ConfigError(
            exc.path, exc.key, f"{exc.problem} (this command needs only --database URL or ${ENV_DATABASE_URL})"
        ) from None


def _status_file(args: argparse.Namespace) -> Any:
    """The daemon's status file on this host (beside its journal), or None when it cannot be told
    where that is (a database URL alone names a SQLite file's journal; a server's is the default)."""
    from .paths import default_journal_path, status_file_path

    url = getattr(args, "database", None) or os.environ.get(ENV_DATABASE_URL, "").strip()
    if not url:
        from .paths import resolve_config_path
        from .quickconfig import journal_path

        journal = journal_path(resolve_config_path(args.config, os.environ), os.environ)
        if journal is not None:  # a plainly valid [database] and [journal], read without the configuration module
            return status_file_path(journal)
        from .config import ConfigError

        try:
            return status_file_path(_config(args).journal.path)
        except ConfigError:
            return None
    return status_file_path(default_journal_path(url))


def _reader_engine(args: argparse.Namespace) -> Any:
    """A read-only SQLAlchemy engine on what the daemon wrote (for the chain's checks, which read
    through the store); refuses a database that was never created."""
    from .db.readers import open_reader

    return open_reader(_database_url(args))


def _reading(args: argparse.Namespace) -> Any:
    """A read-only connection (fsbarge.sqlread: plain SQL, no SQLAlchemy) on what the daemon
    wrote, for one command's queries; refuses a database that was never created."""
    from .sqlread import open_read

    return open_read(_database_url(args))


def _cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon, InstanceConflict
    from .logs import configure_logging, get_logger
    from .preflight import check_paths

    config = _config(args)
    notes = check_paths(config)
    configure_logging(config.log_level, secrets=config.all_passwords())
    log = get_logger("fsbarge.cli")
    for warning in config.warnings:
        log.warning("configuration warning", warning=warning)
    for note in notes:
        log.info("configuration note", note=note)
    try:
        daemon = Daemon(config)
    except InstanceConflict as exc:
        raise CommandError(str(exc)) from None
    metrics = _start_metrics(config, daemon)
    try:
        daemon.run_forever()
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
    return 0


def _start_metrics(config: Any, daemon: Any) -> Any:
    """The [metrics] endpoint (None when off); a port that cannot be bound stops the start."""
    if config.metrics.listen is None:
        return None
    from .metrics import start_metrics

    host, port = config.metrics.listen
    try:
        return start_metrics(config.metrics.listen, config.database.url, daemon)
    except OSError as exc:
        raise CommandError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


def _cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ENV_DATABASE_URL, ConfigError
    from .db.engine import check_driver
    from .db.errors import DatabaseError
    from .preflight import check_paths

    config = _config(args)
    try:
        check_driver(config.database.url)  # e.g. a PostgreSQL URL without fsbarge[postgresql]
    except DatabaseError as exc:
        key = ENV_DATABASE_URL if os.environ.get(ENV_DATABASE_URL) else "database.url"
        raise ConfigError(config.path, key, str(exc)) from None
    notes = check_paths(config)
    teams = ", ".join(t.name for t in config.teams) or "none"
    nodes = ", ".join(f"{n.name} ({n.host}:{n.port})" for n in config.nodes)
    for warning in config.warnings:
        print(f"fsbarge: warning: {warning}", file=sys.stderr)
    for note in notes:
        print(f"fsbarge: note: {note}", file=sys.stderr)
    print(f"{config.path}: OK — nodes: {nodes}; teams: {teams}")
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    """`db upgrade` also checks that the tables of the revision it reports are there: a dropped
    table is damage to an audit database, said precisely, and repaired only on `db repair`."""
    from .db.engine import make_engine
    from .db.migrations import check_intact, current_revision, repair, upgrade
    from .preflight import database_problem

    url, path, key = _database_source(args)
    found = database_problem(url)
    if found is not None:
        problem, fatal = found
        if fatal:
            if path is None:
                raise UsageError(f"{key}: {problem}")
            from .config import ConfigError

            raise ConfigError(path, key, problem)
    engine = make_engine(url)
    if args.db_command == "repair":
        recreated = repair(engine)
        if not recreated:
            print(f"database at revision {current_revision(engine)}: no table is missing, nothing to repair")
            return 0
        print(
            f"recreated {', '.join(recreated)} (empty) at revision {current_revision(engine)}; "
            "run `fsbarge audit verify` to see which audit records were lost"
        )
        return 0
    if args.db_command == "upgrade":
        upgrade(engine)
    check_intact(engine)
    print(f"database at revision {current_revision(engine) or 'none'}")
    return 0


def _cmd_calls(args: argparse.Namespace) -> int:
    import time

    from .auditview import render_channels
    from .queries import list_channels
    from .status import live_nodes

    with _reading(args) as conn:
        rows = list_channels(conn, node=args.node)
        live, notes, running = live_nodes(conn, time.time())
    # Only rows a serving daemon keeps current are live; say what is left out and how old it is.
    shown = [r for r in rows if r["node"] in live]
    for note in notes:
        print(f"fsbarge: {note}", file=sys.stderr)
    print(render_channels(shown, args.format))
    if notes and not running:
        return 3  # no daemon serves any node: nothing here is live
    return 1 if notes else 0


def _cmd_audit(args: argparse.Namespace) -> int:
    handlers = {"list": _audit_list, "show": _audit_show, "stats": _audit_stats, "verify": _audit_verify, "head": _audit_head,
                "quarantine": _audit_quarantine}
    return handlers[args.audit_command](args)


def _audit_verify(args: argparse.Namespace) -> int:
    """`audit chain ok: N changes, head H` (exit 0), or the first mismatch on stderr (exit 1).

    A damaged journal line the daemon recorded in the chain is said after the ok line, with the
    records rebuilt from their later changes: the chain is intact, but the audit has a known gap."""
    from .auditview import iso
    from .db.engine import translate_errors
    from .store.audit_chain import journal_damage, verify_chain

    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        problem, count, head = verify_chain(conn, args.head)
        damage, rebuilt = journal_damage(conn) if problem is None else ([], [])
    if problem is not None:
        print(f"fsbarge: audit chain broken: {problem}", file=sys.stderr)
        return 1
    print(f"audit chain ok: {count} changes, head {head}")
    for note in damage:
        print(f"journal damage: a line of {note.get('size')} bytes at byte {note.get('offset')} of {note.get('journal')} "
              f"could not be trusted ({note.get('why')}), found {iso(note.get('found_at'))}; what it held is lost")
    if rebuilt:
        names = ", ".join(f"#{r['id']}" if r["type"] == "intervention" else f"help request #{r['id']}" for r in rebuilt)
        print(f"rebuilt from their later changes (origin reconstructed, reason journal_damaged): {names}")
    return 0


def _audit_quarantine(args: argparse.Namespace) -> int:
    """`list`: what the shipper set aside beside the journal; `retry`: apply it (exit 1 if some
    still fails). Needs the configuration: the journal's path, and for a retry the database and
    the webhooks (a change applied now is announced like any other)."""
    from .quarantine import quarantine_path, read_entries

    config = _config(args)
    path = quarantine_path(config.journal.path)
    if args.quarantine_command == "list":
        from .quarantineview import render_quarantine

        print(render_quarantine(read_entries(path), args.format))
        return 0
    from .db.engine import make_engine
    from .outbox import Outbox
    from .quarantine import Quarantine, retry
    from .store.audit_apply import AuditStore

    if not read_entries(path):
        print("nothing is quarantined")
        return 0
    store = AuditStore(make_engine(config.database.url), hooks=[Outbox(config.webhooks)])
    try:
        result = retry(Quarantine(path), store.apply, is_transient=lambda exc: bool(getattr(exc, "transient", False)))
    except OSError as exc:  # the daemon's own files: run it as the daemon's user
        raise CommandError(f"cannot rewrite {path}: {exc.strerror or exc}") from None
    noun = "change" if result.applied == 1 else "changes"
    print(f"{result.applied} quarantined audit {noun} applied, {len(result.remaining)} still quarantined")
    for record_type, uid, record_id in result.rebuilt:
        print(f"rebuilt {record_type} #{record_id} ({uid}) from its later changes: its opening was lost with a damaged journal line")
    if result.remaining:
        print(f"fsbarge: still refused: {result.remaining[0]['error']} (fsbarge audit quarantine list)", file=sys.stderr)
        return 1
    return 0


def _audit_head(args: argparse.Namespace) -> int:
    from .db.engine import translate_errors
    from .store.audit_chain import chain_head

    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        head, _count = chain_head(conn)
    print(head)
    return 0


def _audit_list(args: argparse.Namespace) -> int:
    """CSV and JSON: every matching row unless --limit; the table: one page, and a note on stderr
    when rows were left out (an export must never be cut silently)."""
    from . import auditview
    from .queries import count_records
    from .records import iter_records

    limit = args.limit
    if limit is None and args.format == "table":
        limit = TABLE_PAGE
    where = _filter(args)
    out = sys.stdout
    with _reading(args) as conn:
        records = iter_records(conn, where, limit=limit or None, offset=args.offset)
        if args.format == "csv":
            shown = auditview.write_csv(records, out)
        else:
            rows = list(records)
            shown = len(rows)
            text = auditview.render_json(rows) if args.format == "json" else auditview.render_table(rows, args.zone)
            out.write(text + "\n")
        full_page = args.format == "table" and ((limit and shown == limit) or args.offset)
        total = count_records(conn, where) if full_page else shown
    out.flush()
    if args.format == "table" and shown < total:
        print(_left_out(shown, total, args.offset), file=sys.stderr)
    return 0


def _left_out(shown: int, total: int, offset: int) -> str:
    """'showing 50 of 152; --limit 0 for all' (and where the page starts, when not at the top)."""
    if not shown:
        return f"showing none of {total} (--offset {offset} is past the end); --limit 0 for all"
    if offset:
        return f"showing {offset + 1}-{offset + shown} of {total}; --limit 0 for all"
    return f"showing {shown} of {total}; --limit 0 for all"


def _summary(args: argparse.Namespace, by: str) -> Any:
    """Every record matching the filters, summarised by `by` (fsbarge.auditstats)."""
    from .auditstats import summarise
    from .records import iter_records

    team_of = _TeamFallback(args) if by == "team" else None
    with _reading(args) as conn:
        summary = summarise(iter_records(conn, _filter(args)), by, team_of=team_of, zone=args.zone)
    if team_of is not None and team_of.note:
        print(f"fsbarge: {team_of.note}", file=sys.stderr)
    return summary


class _TeamFallback:
    """The team of a record written before fsbarge recorded teams (schema 0008): the
    configuration's [[teams]], read only when such a record turns up, so that a QA account
    reading new records needs no configuration at all. The configuration asked for (--config,
    $FSBARGE_CONFIG) must load; the default one is used only if this user can read it (a QA
    account often cannot), else those records are "(unknown)" and `note` says so."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._resolve: Any = None
        self.unknown = 0

    def __call__(self, rec: Any) -> str:
        if self._resolve is None:
            self._resolve = self._load()
        return str(self._resolve(rec))

    def _load(self) -> Any:
        from .auditstats import UNKNOWN, team_resolver
        from .config import ConfigError, load_teams, resolve_config_path

        try:
            return team_resolver(load_teams(resolve_config_path(self._args.config, os.environ)))
        except ConfigError as exc:
            if getattr(self._args, "config", None) or os.environ.get("FSBARGE_CONFIG"):
                raise ConfigError(exc.path, exc.key, f"{exc.problem} (the teams of records from before fsbarge recorded them come from the configuration's [[teams]])") from None

        def unknown(_rec: Any) -> str:
            self.unknown += 1
            return UNKNOWN

        return unknown

    @property
    def note(self) -> str | None:
        if not self.unknown:
            return None
        return (f"{self.unknown} interventions have no recorded team (written before fsbarge recorded teams, or their "
                "agent is in no team): shown as (unknown); --config PATH places them by the configuration's [[teams]]")


def _audit_stats(args: argparse.Namespace) -> int:
    from .auditstats import render_stats

    print(render_stats(_summary(args, args.by), args.format))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 healthy, 1 degraded, 3 daemon not running; --watch redraws every second until ^C."""
    import time

    from .db.errors import DatabaseError
    from .status import EXIT, assess, gather, local_daemon, read_status_file, render_status

    status_file = _status_file(args)
    state = None
    try:
        while True:
            local = read_status_file(status_file) if status_file is not None else None
            try:
                with _reading(args) as conn:
                    facts = gather(conn)
            except DatabaseError as exc:
                # The database is the problem: on the daemon's host its status file still says
                # whether it runs; elsewhere the error is the answer.
                if local_daemon(local, time.time()) is None:
                    raise
                facts = {"nodes": [], "live_channels": {}, "interventions": [], "database_error": str(exc)}
            facts["local"] = local
            doc = assess(facts, time.time())
            state = doc["state"]
            text = render_status(doc, args.format)
            if args.watch and sys.stdout.isatty():
                text = "\x1b[H\x1b[2J" + text  # home and clear: a redraw, not a scroll
            print(text, flush=True)
            if not args.watch:
                return EXIT[state]
            time.sleep(1.0)  # the --watch period itself, not a wait for something
    except KeyboardInterrupt:  # the way out of --watch: the last status decides the exit code
        if state is None:
            raise
        return EXIT[state]


def _cmd_report(args: argparse.Namespace) -> int:
    """Every matching record, summarised into one HTML file (written whole, then renamed into place)."""
    from datetime import datetime, timezone

    from . import __version__
    from .records import list_records
    from .report import build_report

    team_of = _TeamFallback(args)
    with _reading(args) as conn:
        records = list_records(conn, _filter(args))
    starts = [r["started_at"] for r in records]
    zone = args.zone
    first = zone.moment(args.since) if args.since else (zone.moment(min(starts)) if starts else "the first record")
    last = zone.moment(args.until) if args.until else (zone.moment(max(starts)) if starts else "the last record")
    shown = {k: getattr(args, k) for k in ("supervisor", "agent", "mode", "outcome", "node")}
    filters = ", ".join(f"{k} {v}" for k, v in shown.items() if v) or "none"
    html = build_report(
        records,
        title="fsbarge audit report",
        period=f"from {first} to {last}" if not args.until else f"from {first}, before {last}",
        filters=filters,
        generated=f"{zone.moment(datetime.now(timezone.utc))} by fsbarge {__version__}",
        team_of=team_of,
        zone=zone,
    )
    if args.output == "-":
        sys.stdout.write(html)
        if team_of.note:
            print(f"fsbarge: {team_of.note}", file=sys.stderr)
        return 0
    target = os.path.abspath(args.output)
    partial = f"{target}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(partial, target)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}: {len(records)} interventions, {first} to {last}")
    if team_of.note:
        print(f"fsbarge: {team_of.note}", file=sys.stderr)
    return 0


def _cmd_help(args: argparse.Namespace) -> int:
    """`fsbarge help` alone: what the group is and its sub-commands (a newcomer typing it looks
    for help), not an error about a missing argument."""
    if args.help_command is None:
        print(args.show_help(), end="")
        return 0
    return {"list": _help_list, "request": _help_request}[args.help_command](args)


def _help_list(args: argparse.Namespace) -> int:
    from . import helpview
    from .records import list_help_requests

    with _reading(args) as conn:
        records = list_help_requests(
            conn, agent=args.agent, supervisor=args.supervisor, since=args.since, until=args.until,
            outcome=args.outcome, node=args.node, limit=args.limit or None, offset=args.offset,
        )
    helpview.render(records, args.format, sys.stdout, args.zone)
    return 0


def _help_request(args: argparse.Namespace) -> int:
    """Find the agent's call in the daemon's mirror and send its node the event a *9 sends."""
    import time

    from .esl.connection import ConnectError
    from .esl.session import send_once
    from .queries import list_channels
    from .sqlread import open_read
    from .status import live_nodes

    config = _config(args)
    agent = args.agent.strip()
    if not any(agent in t.agents for t in config.teams):
        raise CommandError(f"{agent!r} is not an agent of any team in {config.path}")
    reason = (args.reason or "").strip()
    if any(ch in reason for ch in "\r\n"):
        raise UsageError("--reason must be one line")
    with open_read(config.database.url) as conn:
        live, _notes, _running = live_nodes(conn, time.time())
        legs = [r for r in list_channels(conn) if r["node"] in live and r.get("user") == agent and r.get("answer_state") == "answered"]
    if not legs:
        raise CommandError(f"agent {agent} is not on an answered call (as the running daemon sees the live channels)")
    node = next(n for n in config.nodes if n.name == legs[0]["node"])
    lines = ["sendevent CUSTOM", "Event-Subclass: fsbarge::help", f"Fsbarge-Agent: {agent}"]
    if reason:
        lines.append(f"Fsbarge-Reason: {reason}")
    try:
        [reply] = send_once(node, ["\n".join(lines)])
    except ConnectError as exc:
        raise CommandError(f"cannot reach FreeSWITCH node {node.name}: {exc}") from None
    if not reply.startswith("+OK"):
        raise CommandError(f"FreeSWITCH node {node.name} refused the request: {reply}")
    print(f"help requested for agent {agent} on {node.name}")
    return 0


def _audit_show(args: argparse.Namespace) -> int:
    from .auditview import render_show
    from .records import get_record

    record = None
    with _reading(args) as conn:  # a missing or unmigrated database is the error to report, whatever the id
        # ids are the schema's INTEGER: 32 bits on PostgreSQL, which refuses to compare a larger number
        if 0 < args.id <= MAX_ID:
            record = get_record(conn, args.id)
    if record is None:
        print(f"fsbarge: no intervention with id {args.id}", file=sys.stderr)
        return 1
    print(render_show(record, args.format, args.zone))
    return 0


def _cmd_webhooks(args: argparse.Namespace) -> int:
    import time

    from .queries import list_webhook_deliveries
    from .webhookview import render_deliveries

    if args.webhooks_command == "list":
        with _reading(args) as conn:
            rows = list_webhook_deliveries(conn, state=args.state, limit=args.limit or None)
        print(render_deliveries(rows, args.format))
        return 0
    from .db.engine import make_engine
    from .store.webhook_deliveries import WebhookStore

    _reader_engine(args)  # a missing or unmigrated database is the error to report, not a write failure
    if not 0 < args.id <= MAX_ID:
        raise CommandError(f"no webhook delivery with id {args.id}")
    try:
        previous = WebhookStore(make_engine(_database_url(args))).retry(args.id, time.time())
    except (LookupError, ValueError) as exc:
        raise CommandError(str(exc.args[0])) from None
    print(f"webhook delivery {args.id}: {previous} -> pending, due now")
    return 0


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class of an fsbarge module, if that module was imported at all: a command that
    never loaded the configuration (a read command given --database) cannot have raised its
    error, and main() need not import it just to name it."""
    loaded = sys.modules.get(f"{__package__}.{module}")
    return getattr(loaded, name, None) if loaded is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
        _resolve_times(args)
        handler = {
            "run": _cmd_run,
            "check-config": _cmd_check_config,
            "db": _cmd_db,
            "calls": _cmd_calls,
            "audit": _cmd_audit,
            "report": _cmd_report,
            "status": _cmd_status,
            "help": _cmd_help,
            "webhooks": _cmd_webhooks,
        }[args.command]
        return handler(args)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
