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

from .terms import HELP_OUTCOMES, MODES, OUTCOMES  # noqa: E402 - light: no third-party imports
TABLE_PAGE = 50  # rows `audit list` shows as a table unless --limit says otherwise
ENV_DATABASE_URL = "FSBARGE_DATABASE_URL"
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds on every backend


class UsageError(Exception):
    """Bad command line: exit status 2."""


class CommandError(Exception):
    """A command that could not do its work (e.g. write its output): exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + error; we want one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _build_parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $FSBARGE_CONFIG, else /etc/fsbarge/fsbarge.toml)"
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --config given before the subcommand is not overwritten by this default.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    # read commands: a database URL is all they need (a QA account may not read the daemon's config)
    reader = argparse.ArgumentParser(add_help=False, parents=[common])
    reader.add_argument(
        "--database",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"database to read (default: ${ENV_DATABASE_URL}, else [database] url of the configuration)",
    )

    p = _Parser(prog="fsbarge", description="Supervisor listen / whisper / barge for FreeSWITCH, with an audit trail.")
    p.add_argument("--version", action="version", version=f"fsbarge {__version__}")
    p.add_argument("--config", metavar="PATH", default=None, help=config_help)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("run", parents=[common], help="run the daemon in the foreground (systemd runs this)")
    sub.add_parser("check-config", parents=[common], help="validate the configuration and exit")

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    # like the read commands: a database URL is all it needs (no nodes, teams or ESL password)
    target = argparse.ArgumentParser(add_help=False, parents=[common])
    target.add_argument(
        "--database",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"database to migrate (default: ${ENV_DATABASE_URL}, else [database] url of the configuration)",
    )
    dbsub.add_parser("upgrade", parents=[target], help="apply Alembic migrations to the database (creates a SQLite file)")
    dbsub.add_parser("current", parents=[target], help="print the database's migration revision")

    calls = sub.add_parser("calls", parents=[reader], help="live channels as the daemon mirrors them")
    calls.add_argument("--format", choices=("table", "json"), default="table")
    calls.add_argument("--node", help="only this FreeSWITCH node")

    audit = sub.add_parser("audit", help="query the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    lst = asub.add_parser("list", parents=[reader], help="interventions, newest first")
    _add_filters(lst)
    lst.add_argument(
        "--limit",
        type=_count,
        default=None,
        help=f"at most this many (default: all for csv and json, {TABLE_PAGE} for the table; 0 = all)",
    )
    lst.add_argument("--offset", type=_count, default=0, help="skip this many first (newest) rows")
    lst.add_argument("--format", choices=("table", "json", "csv"), default="table")
    stats = asub.add_parser("stats", parents=[reader], help="interventions, outcomes, refusals and time per group")
    stats.add_argument("--by", choices=("agent", "supervisor", "team", "day"), required=True,
                       help="one row per agent, supervisor, team (from the configuration's [[teams]]) or UTC day")
    _add_filters(stats)
    stats.add_argument("--format", choices=("table", "json", "csv"), default="table")
    show = asub.add_parser("show", parents=[reader], help="one intervention with its mode history")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=("table", "json"), default="table")
    verify = asub.add_parser("verify", parents=[reader], help="recompute the audit hash chain and check every record against it (exit 1 on a mismatch)")
    verify.add_argument("--head", metavar="HASH", type=_hash_arg, help="a head noted earlier (fsbarge audit head): must still be in the chain")
    asub.add_parser("head", parents=[reader], help="print the audit chain's head hash, to note outside the system")
    helpp = sub.add_parser("help", help="agents' help requests (*9, or `help request` from another tool)")
    hsub = helpp.add_subparsers(dest="help_command", required=True, parser_class=_Parser)
    hlist = hsub.add_parser("list", parents=[reader], help="help requests, newest first")
    hlist.add_argument("--agent", metavar="EXT")
    hlist.add_argument("--supervisor", metavar="EXT", help="who answered")
    hlist.add_argument("--since", metavar="ISO8601", type=_time_arg, help="requested at or after (UTC unless an offset is given)")
    hlist.add_argument("--until", metavar="ISO8601", type=_time_arg, help="requested before")
    hlist.add_argument("--outcome", choices=(*HELP_OUTCOMES, "ringing"))
    hlist.add_argument("--node", help="only this FreeSWITCH node")
    hlist.add_argument("--limit", type=_count, default=None, help="at most this many (default: all; 0 = all)")
    hlist.add_argument("--offset", type=_count, default=0, help="skip this many first (newest) rows")
    hlist.add_argument("--format", choices=("table", "json", "csv"), default="table")
    hreq = hsub.add_parser("request", parents=[common], help="summon a supervisor into an agent's call, as the agent's *9 does")
    hreq.add_argument("--agent", metavar="EXT", required=True)
    hreq.add_argument("--reason", metavar="TEXT", help="why (recorded with the request)")
    status = sub.add_parser("status", parents=[reader], help="daemon, nodes and who is monitoring whom now (exit 0 healthy, 1 degraded, 3 not running)")
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.add_argument("--watch", action="store_true", help="redraw every second until interrupted")
    hooks = sub.add_parser("webhooks", help="the webhook outbox: what was delivered, what waits, what failed")
    hsub = hooks.add_subparsers(dest="webhooks_command", required=True, parser_class=_Parser)
    hlist = hsub.add_parser("list", parents=[reader], help="deliveries, newest first")
    hlist.add_argument("--state", choices=("pending", "failed", "delivered"))
    hlist.add_argument("--limit", type=_count, default=None, help="at most this many (default: all)")
    hlist.add_argument("--format", choices=("table", "json"), default="table")
    hretry = hsub.add_parser("retry", parents=[reader], help="a failed or pending delivery goes back to pending, due now")
    hretry.add_argument("id", type=int)
    report = sub.add_parser("report", parents=[reader], help="write a self-contained HTML report with charts")
    _add_filters(report)
    report.add_argument("-o", "--output", metavar="FILE.html", required=True, help="where to write it (- for stdout)")
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
    """argparse type: an ISO 8601 date or time (UTC unless it carries an offset)."""
    from .auditview import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """The audit filters shared by `audit list`, `audit stats` and `report`."""
    parser.add_argument("--supervisor", metavar="EXT")
    parser.add_argument("--agent", metavar="EXT")
    parser.add_argument("--since", metavar="ISO8601", type=_time_arg, help="started at or after (UTC unless an offset is given)")
    parser.add_argument("--until", metavar="ISO8601", type=_time_arg, help="started before")
    parser.add_argument("--mode", choices=MODES, help="requested, or used at any time")
    parser.add_argument("--outcome", choices=OUTCOMES)
    parser.add_argument("--node", help="only this FreeSWITCH node")


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
    from .config import ConfigError, load_database_url, resolve_config_path

    path = resolve_config_path(args.config, os.environ)
    try:
        return load_database_url(path), path, "database.url"
    except ConfigError as exc:
        raise ConfigError(
            exc.path, exc.key, f"{exc.problem} (this command needs only --database URL or ${ENV_DATABASE_URL})"
        ) from None


def _reader_engine(args: argparse.Namespace) -> Any:
    """A read-only engine on what the daemon wrote; refuses a database that was never created."""
    from .db import open_reader

    return open_reader(_database_url(args))


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
    from .db import DatabaseError, check_driver
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
    from .db import current_revision, make_engine, upgrade
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
    if args.db_command == "upgrade":
        upgrade(engine)
    print(f"database at revision {current_revision(engine) or 'none'}")
    return 0


def _cmd_calls(args: argparse.Namespace) -> int:
    from .auditview import render_channels
    from .db import translate_errors
    from .queries import list_channels

    import time

    from .status import live_nodes

    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
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
    handlers = {"list": _audit_list, "show": _audit_show, "stats": _audit_stats, "verify": _audit_verify, "head": _audit_head}
    return handlers[args.audit_command](args)


def _audit_verify(args: argparse.Namespace) -> int:
    """`audit chain ok: N changes, head H` (exit 0), or the first mismatch on stderr (exit 1)."""
    from .db import translate_errors
    from .store import verify_chain

    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        problem, count, head = verify_chain(conn, args.head)
    if problem is not None:
        print(f"fsbarge: audit chain broken: {problem}", file=sys.stderr)
        return 1
    print(f"audit chain ok: {count} changes, head {head}")
    return 0


def _audit_head(args: argparse.Namespace) -> int:
    from .db import translate_errors
    from .store import chain_head

    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        head, _count = chain_head(conn)
    print(head)
    return 0


def _audit_list(args: argparse.Namespace) -> int:
    """CSV and JSON: every matching row unless --limit; the table: one page, and a note on stderr
    when rows were left out (an export must never be cut silently)."""
    from . import auditview
    from .db import translate_errors
    from .queries import count_records, iter_records

    limit = args.limit
    if limit is None and args.format == "table":
        limit = TABLE_PAGE
    where = _filter(args)
    engine = _reader_engine(args)
    out = sys.stdout
    with translate_errors(engine), engine.connect() as conn:
        records = iter_records(conn, where, limit=limit or None, offset=args.offset)
        if args.format == "csv":
            shown = auditview.write_csv(records, out)
        else:
            rows = list(records)
            shown = len(rows)
            render = auditview.render_json if args.format == "json" else auditview.render_table
            out.write(render(rows) + "\n")
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
    from .db import translate_errors
    from .queries import iter_records

    team_of = _team_of(args) if by == "team" else None
    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        return summarise(iter_records(conn, _filter(args)), by, team_of=team_of)


def _team_of(args: argparse.Namespace) -> Any:
    """Teams are not in the audit: they come from the configuration's [[teams]]."""
    from .auditstats import team_resolver
    from .config import ConfigError, load_teams, resolve_config_path

    try:
        return team_resolver(load_teams(resolve_config_path(args.config, os.environ)))
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.key, f"{exc.problem} (teams come from the configuration's [[teams]])") from None


def _audit_stats(args: argparse.Namespace) -> int:
    from .auditstats import render_stats

    print(render_stats(_summary(args, args.by), args.format))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 healthy, 1 degraded, 3 daemon not running; --watch redraws every second until ^C."""
    import time

    from .db import translate_errors
    from .status import EXIT, assess, gather, render_status

    engine = _reader_engine(args)
    state = None
    try:
        while True:
            with translate_errors(engine), engine.connect() as conn:
                doc = assess(gather(conn), time.time())
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
    from .auditview import iso
    from .config import ConfigError
    from .db import translate_errors
    from .queries import list_records
    from .report import build_report

    try:
        team_of = _team_of(args)
    except ConfigError as exc:
        if getattr(args, "config", None) or os.environ.get("FSBARGE_CONFIG"):
            raise  # asked for this configuration: it must work
        print(f"fsbarge: report without teams: {exc}", file=sys.stderr)
        team_of = None
    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        records = list_records(conn, _filter(args))
    starts = [r["started_at"] for r in records]
    first = iso(args.since) if args.since else (min(starts) if starts else "the first record")
    last = iso(args.until) if args.until else (max(starts) if starts else "the last record")
    shown = {k: getattr(args, k) for k in ("supervisor", "agent", "mode", "outcome", "node")}
    filters = ", ".join(f"{k} {v}" for k, v in shown.items() if v) or "none"
    html = build_report(
        records,
        title="fsbarge audit report",
        period=f"from {first} to {last}" if not args.until else f"from {first}, before {last}",
        filters=filters,
        generated=f"{iso(datetime.now(timezone.utc))} by fsbarge {__version__}",
        team_of=team_of,
    )
    if args.output == "-":
        sys.stdout.write(html)
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
    return 0


def _cmd_help(args: argparse.Namespace) -> int:
    return {"list": _help_list, "request": _help_request}[args.help_command](args)


def _help_list(args: argparse.Namespace) -> int:
    from . import helpview
    from .db import translate_errors
    from .queries import list_help_requests

    engine = _reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        records = list_help_requests(
            conn, agent=args.agent, supervisor=args.supervisor, since=args.since, until=args.until,
            outcome=args.outcome, node=args.node, limit=args.limit or None, offset=args.offset,
        )
    helpview.render(records, args.format, sys.stdout)
    return 0


def _help_request(args: argparse.Namespace) -> int:
    """Find the agent's call in the daemon's mirror and send its node the event a *9 sends."""
    import time

    from .db import open_reader, translate_errors
    from .esl import ConnectError, send_once
    from .queries import list_channels
    from .status import live_nodes

    config = _config(args)
    agent = args.agent.strip()
    if not any(agent in t.agents for t in config.teams):
        raise CommandError(f"{agent!r} is not an agent of any team in {config.path}")
    reason = (args.reason or "").strip()
    if any(ch in reason for ch in "\r\n"):
        raise UsageError("--reason must be one line")
    engine = open_reader(config.database.url)
    with translate_errors(engine), engine.connect() as conn:
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
    from .db import translate_errors
    from .queries import get_record

    record = None
    # ids are the schema's INTEGER: 32 bits on PostgreSQL, which refuses to compare a larger number
    if 0 < args.id <= MAX_ID:
        engine = _reader_engine(args)
        with translate_errors(engine), engine.connect() as conn:
            record = get_record(conn, args.id)
    else:
        _reader_engine(args)  # a missing or unmigrated database is still the error to report
    if record is None:
        print(f"fsbarge: no intervention with id {args.id}", file=sys.stderr)
        return 1
    print(render_show(record, args.format))
    return 0


def _cmd_webhooks(args: argparse.Namespace) -> int:
    import time

    from .db import make_engine, translate_errors
    from .queries import list_webhook_deliveries
    from .store import WebhookStore
    from .webhookview import render_deliveries

    if args.webhooks_command == "list":
        engine = _reader_engine(args)
        with translate_errors(engine), engine.connect() as conn:
            rows = list_webhook_deliveries(conn, state=args.state, limit=args.limit or None)
        print(render_deliveries(rows, args.format))
        return 0
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
    error, and main() need not import it (and SQLAlchemy) just to name it."""
    loaded = sys.modules.get(f"{__package__}.{module}")
    return getattr(loaded, name, None) if loaded is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
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
        config_error, database_error = _loaded("config", "ConfigError"), _loaded("db", "DatabaseError")
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
