"""The commands that run or change things: the daemon (`run`), `check-config`, `db
upgrade/current/repair`, `audit quarantine`, `help request`, `webhooks retry`. They may load the
configuration, SQLAlchemy and Alembic (inside each command, so that importing this module costs
the read commands nothing)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fsbarge.cli.errors import CommandError, UsageError
from fsbarge.cli.sources import MAX_ID, configuration, reader_engine, source_of, url_of


def run(args: argparse.Namespace) -> int:
    from fsbarge.daemon.root import Daemon, InstanceConflict
    from fsbarge.logs import configure_logging, get_logger
    from fsbarge.daemon.preflight import check_paths

    config = configuration(args)
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
    from fsbarge.daemon.metrics import start_metrics

    host, port = config.metrics.listen
    try:
        return start_metrics(config.metrics.listen, config.database.url, daemon)
    except OSError as exc:
        raise CommandError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


def check_config(args: argparse.Namespace) -> int:
    from fsbarge.config import ENV_DATABASE_URL, ConfigError
    from fsbarge.store.engine import check_driver
    from fsbarge.store.errors import DatabaseError
    from fsbarge.daemon.preflight import check_paths

    config = configuration(args)
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


def db(args: argparse.Namespace) -> int:
    """`db upgrade` also checks that the tables of the revision it reports are there: a dropped
    table is damage to an audit database, said precisely, and repaired only on `db repair`."""
    from fsbarge.store.engine import make_engine
    from fsbarge.store.migrate import check_intact, current_revision, repair, upgrade
    from fsbarge.daemon.preflight import database_problem

    url, path, key = source_of(args)
    found = database_problem(url)
    if found is not None:
        problem, fatal = found
        if fatal:
            if path is None:
                raise UsageError(f"{key}: {problem}")
            from fsbarge.config import ConfigError

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


def audit_quarantine(args: argparse.Namespace) -> int:
    """`list`: what the shipper set aside beside the journal; `retry`: apply it (exit 1 if some
    still fails). Needs the configuration: the journal's path, and for a retry the database and
    the webhooks (a change applied now is announced like any other)."""
    from fsbarge.daemon.quarantine import quarantine_path, read_entries

    config = configuration(args)
    path = quarantine_path(config.journal.path)
    if args.quarantine_command == "list":
        from fsbarge.read.quarantineview import render_quarantine

        print(render_quarantine(read_entries(path), args.format))
        return 0
    from fsbarge.store.engine import make_engine
    from fsbarge.daemon.outbox import Outbox
    from fsbarge.daemon.quarantine import Quarantine, retry
    from fsbarge.store.audit_apply import AuditStore

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


def help_request(args: argparse.Namespace) -> int:
    """Find the agent's call in the daemon's mirror and send its node the event a *9 sends."""
    import time

    from fsbarge.daemon.esl.connection import ConnectError
    from fsbarge.daemon.esl.session import send_once
    from fsbarge.read.queries import list_channels
    from fsbarge.read.sqlread import open_read
    from fsbarge.read.status import live_nodes

    config = configuration(args)
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


def webhooks_retry(args: argparse.Namespace) -> int:
    """A failed or pending delivery back to pending, due now (the daemon's outbox sends it)."""
    import time

    from fsbarge.store.engine import make_engine
    from fsbarge.store.webhook_deliveries import WebhookStore

    reader_engine(args)  # a missing or unmigrated database is the error to report, not a write failure
    if not 0 < args.id <= MAX_ID:
        raise CommandError(f"no webhook delivery with id {args.id}")
    try:
        previous = WebhookStore(make_engine(url_of(args))).retry(args.id, time.time())
    except (LookupError, ValueError) as exc:
        raise CommandError(str(exc.args[0])) from None
    print(f"webhook delivery {args.id}: {previous} -> pending, due now")
    return 0
