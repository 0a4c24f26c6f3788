"""The read commands: the audit (list, show, stats, verify, head), the report, live calls,
status, help requests and webhook deliveries. They start fast (issue 18: under 150 ms as whole
processes): everything heavy is imported inside the command that needs it, and the queries run
on plain sqlite3/psycopg connections (fsbarge.read.sqlread), never SQLAlchemy; only `audit verify`
and `audit head`, which read the chain through the store, load it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fsbarge.cli.errors import CommandError
from fsbarge.cli.parser import TABLE_PAGE
from fsbarge.cli.sources import MAX_ID, audit_filter, reader_engine, reading, status_file_of


def calls(args: argparse.Namespace) -> int:
    import time

    from fsbarge.read.channelview import render_channels
    from fsbarge.read.queries import list_channels
    from fsbarge.read.status import live_nodes

    with reading(args) as conn:
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


def audit_verify(args: argparse.Namespace) -> int:
    """`audit chain ok: N changes, head H` (exit 0), or the first mismatch on stderr (exit 1).

    A damaged journal line the daemon recorded in the chain is said after the ok line, with the
    records rebuilt from their later changes: the chain is intact, but the audit has a known gap."""
    from fsbarge.read.auditview import iso
    from fsbarge.store.engine import translate_errors
    from fsbarge.store.audit_chain import journal_damage, verify_chain

    engine = reader_engine(args)
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


def audit_head(args: argparse.Namespace) -> int:
    from fsbarge.store.engine import translate_errors
    from fsbarge.store.audit_chain import chain_head

    engine = reader_engine(args)
    with translate_errors(engine), engine.connect() as conn:
        head, _count = chain_head(conn)
    print(head)
    return 0


def audit_list(args: argparse.Namespace) -> int:
    """CSV and JSON: every matching row unless --limit; the table: one page, and a note on stderr
    when rows were left out (an export must never be cut silently)."""
    from fsbarge.read import auditview
    from fsbarge.read.queries import count_records
    from fsbarge.read.records import iter_records

    limit = args.limit
    if limit is None and args.format == "table":
        limit = TABLE_PAGE
    where = audit_filter(args)
    out = sys.stdout
    with reading(args) as conn:
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
    """Every record matching the filters, summarised by `by` (fsbarge.read.auditstats)."""
    from fsbarge.read.auditstats import summarise
    from fsbarge.read.records import iter_records

    team_of = _TeamFallback(args) if by == "team" else None
    with reading(args) as conn:
        summary = summarise(iter_records(conn, audit_filter(args)), by, team_of=team_of, zone=args.zone)
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
        from fsbarge.read.auditstats import UNKNOWN, team_resolver
        from fsbarge.config import ConfigError, load_teams, resolve_config_path

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


def audit_stats(args: argparse.Namespace) -> int:
    from fsbarge.read.auditstats import render_stats

    print(render_stats(_summary(args, args.by), args.format))
    return 0


def status(args: argparse.Namespace) -> int:
    """Exit 0 healthy, 1 degraded, 3 daemon not running; --watch redraws every second until ^C."""
    import time

    from fsbarge.store.errors import DatabaseError
    from fsbarge.read.status import EXIT, assess, gather, local_daemon, read_status_file, render_status

    status_file = status_file_of(args)
    state = None
    try:
        while True:
            local = read_status_file(status_file) if status_file is not None else None
            try:
                with reading(args) as conn:
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


def report(args: argparse.Namespace) -> int:
    """Every matching record, summarised into one HTML file (written whole, then renamed into place)."""
    from datetime import datetime, timezone

    from fsbarge import __version__
    from fsbarge.read.records import list_records
    from fsbarge.read.report import build_report

    team_of = _TeamFallback(args)
    with reading(args) as conn:
        records = list_records(conn, audit_filter(args))
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


def help_usage(args: argparse.Namespace) -> int:
    """`fsbarge help` alone: what the group is and its sub-commands (a newcomer typing it looks
    for help), not an error about a missing argument."""
    print(args.show_help(), end="")
    return 0


def help_list(args: argparse.Namespace) -> int:
    from fsbarge.read import helpview
    from fsbarge.read.records import list_help_requests

    with reading(args) as conn:
        records = list_help_requests(
            conn, agent=args.agent, supervisor=args.supervisor, since=args.since, until=args.until,
            outcome=args.outcome, node=args.node, limit=args.limit or None, offset=args.offset,
        )
    helpview.render(records, args.format, sys.stdout, args.zone)
    return 0


def audit_show(args: argparse.Namespace) -> int:
    from fsbarge.read.auditview import render_show
    from fsbarge.read.records import get_record

    record = None
    with reading(args) as conn:  # a missing or unmigrated database is the error to report, whatever the id
        # ids are the schema's INTEGER: 32 bits on PostgreSQL, which refuses to compare a larger number
        if 0 < args.id <= MAX_ID:
            record = get_record(conn, args.id)
    if record is None:
        print(f"fsbarge: no intervention with id {args.id}", file=sys.stderr)
        return 1
    print(render_show(record, args.format, args.zone))
    return 0


def webhooks_list(args: argparse.Namespace) -> int:
    from fsbarge.read.queries import list_webhook_deliveries
    from fsbarge.read.webhookview import render_deliveries

    with reading(args) as conn:
        rows = list_webhook_deliveries(conn, state=args.state, limit=args.limit or None)
    print(render_deliveries(rows, args.format))
    return 0
