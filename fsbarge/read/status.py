"""`fsbarge status`: is the daemon alive, is every node connected, who is monitoring whom right now.

Read from what the daemon writes to the database (no socket to the daemon, so it works from any
host that can read the database): each node's row (connected, resynced_at, last_event_at and the
heartbeat written every few seconds while its loop runs), the live channel mirror and the records
still `active`. `assess()` is pure; the CLI gathers its inputs with `gather()`.

A daemon whose newest heartbeat is older than HEARTBEAT_STALE_SECONDS, or that recorded a clean
stop after it, is not running: what it left in the database is then shown as its last word, never
as live state. The heartbeat also carries the problems the daemon cannot fix by itself
(fsbarge.daemon.health): any of them makes the status "degraded" with its reason. On the daemon's own
host the status file beside the journal says the same when the heartbeat cannot reach the database
(a database the daemon may not write, or one that is down), so a serving daemon is never reported
as not running.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fsbarge.read.auditview import iso, tabulate

__all__ = ["EXIT", "HEARTBEAT_STALE_SECONDS", "assess", "gather", "render_status"]

# The daemon ticks every node's loop every 5 s (daemon.py's watchdog interval) and each tick writes a
# heartbeat through the mirror; three missed ticks and a margin mean nobody is serving that node.
HEARTBEAT_STALE_SECONDS = 20.0

EXIT = {"healthy": 0, "degraded": 1, "not_running": 3}


# --------------------------------------------------------------------------- hooks for what is not recorded yet


def journal_backlog(nodes: list[dict[str, Any]]) -> int | None:
    """Audit changes fsync'd to the daemon's journal but not yet in the database, as the daemon
    reported with its last heartbeat (None: never reported)."""
    reported = [n["journal_backlog"] for n in nodes if n.get("journal_backlog") is not None]
    return max(reported, default=None)


def webhook_backlog(conn: Any) -> int | None:
    """Webhook deliveries pending (SPEC "Webhooks")."""
    return webhook_states(conn).get("pending", 0)


def webhook_states(conn: Any) -> dict[str, int]:
    """The outbox by state: pending, failed (and delivered)."""
    from fsbarge.read import queries

    return queries.webhook_counts(conn)


def read_status_file(path: Any) -> dict[str, Any] | None:
    """What the daemon last wrote to its status file, or None (no file, unreadable, damaged: the
    database speaks then)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def heartbeat_problems(node: Mapping[str, Any]) -> list[str]:
    """The problems a node's heartbeat carried (a JSON list; anything else is ignored)."""
    import json

    raw = node.get("problems")
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [str(p) for p in value] if isinstance(value, list) else []


def stopped_cleanly(node: Mapping[str, Any]) -> bool:
    """The daemon serving this node recorded a clean stop after its last heartbeat."""
    stopped, beat = node.get("stopped_at"), node.get("heartbeat_at")
    return stopped is not None and (beat is None or stopped >= beat)


def local_daemon(doc: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The status file's word, when it says a daemon is running here now (else None)."""
    if not doc or doc.get("stopped_at") is not None:
        return None
    at = doc.get("at")
    if not isinstance(at, (int, float)) or now - at > HEARTBEAT_STALE_SECONDS:
        return None
    return dict(doc)


def daemon_info(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The version and start time the daemon reported with its newest heartbeat."""
    beating = [n for n in nodes if n.get("heartbeat_at") is not None]
    newest = max(beating, key=lambda n: n["heartbeat_at"], default={})
    return {"version": newest.get("daemon_version"), "started_at": newest.get("daemon_started_at")}


# --------------------------------------------------------------------------- gather and assess


def gather(conn: Any) -> dict[str, Any]:
    """Everything `assess` needs, read on one connection (one transaction, one snapshot)."""
    from fsbarge.read import queries

    nodes = queries.list_nodes(conn)
    return {
        "nodes": nodes,
        "live_channels": queries.live_channel_counts(conn),
        "interventions": queries.running_interventions(conn),
        "journal_backlog": journal_backlog(nodes),
        "webhook_backlog": webhook_backlog(conn),
        "webhook_failed": webhook_states(conn).get("failed", 0),
        "daemon": daemon_info(nodes),
    }


def live_nodes(conn: Any, now: float) -> tuple[set[str], list[str], bool]:
    """Nodes whose mirrored channels are live (a daemon beating and connected to FreeSWITCH), one
    line per node that is not, saying since when its data is stale, and whether any daemon is
    running at all (for `fsbarge calls`)."""
    from fsbarge.read import queries

    live: set[str] = set()
    notes: list[str] = []
    running = False
    for n in queries.list_nodes(conn):
        beat = n.get("heartbeat_at")
        fresh = beat is not None and now - beat <= HEARTBEAT_STALE_SECONDS
        running = running or fresh
        if not fresh:
            seen = f"last heartbeat {_ago(_age(now, beat))}" if beat is not None else "never served"
            notes.append(f"node {n['name']}: daemon not running ({seen}); its channels are not shown")
        elif not n.get("connected"):
            notes.append(f"node {n['name']}: not connected to FreeSWITCH (data from {_ago(_age(now, n.get('last_event_at')))}); its channels are not shown")
        else:
            live.add(n["name"])
    return live, notes, running


def _age(now: float, at: float | None) -> float | None:
    return None if at is None else round(max(0.0, now - at), 1)


def _epoch(value: Any) -> float | None:
    from fsbarge.read.auditview import to_ms

    ms = to_ms(value)
    return None if ms is None else ms / 1000


def assess(facts: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The status document (what `--format json` prints) from `gather()`'s facts at `now`."""
    nodes = facts["nodes"]
    beats = [n["heartbeat_at"] for n in nodes if n.get("heartbeat_at") is not None]
    newest = max(beats, default=None)
    live = [n for n in nodes if n.get("heartbeat_at") is not None and now - n["heartbeat_at"] <= HEARTBEAT_STALE_SECONDS
            and not stopped_cleanly(n)]
    running = bool(live)
    local = local_daemon(facts.get("local"), now)
    problems: list[str] = []
    for n in live:
        problems += [p for p in heartbeat_problems(n) if p not in problems]
    if local is not None:
        problems += [p for p in local.get("problems") or [] if p not in problems]
    if facts.get("database_error"):
        problems.insert(0, f"database: {facts['database_error']}")
    if local is not None and not running:
        # The daemon runs here (its status file is fresh) but its heartbeat does not reach the
        # database: that is a problem of the database, not a daemon that is down.
        problems.insert(0, f"the daemon is running (pid {local.get('pid')}) but its heartbeat does not reach the database")
        running = True
        newest = local.get("at")
    out_nodes = []
    for n in nodes:
        beat_age = _age(now, n.get("heartbeat_at"))
        served = beat_age is not None and beat_age <= HEARTBEAT_STALE_SECONDS and not stopped_cleanly(n)
        connected = bool(n.get("connected")) and served
        if running and not served:
            problems.append(f"node {n['name']}: no heartbeat for {beat_age if beat_age is not None else 'ever'} s")
        elif running and not connected:
            problems.append(f"node {n['name']}: not connected to FreeSWITCH")
        out_nodes.append({
            "name": n["name"],
            "connected": connected if running else None,  # unknown: nobody is looking
            "connected_since": iso(n.get("resynced_at")) if connected else None,
            "last_event_at": iso(n.get("last_event_at")),
            "last_event_age_seconds": _age(now, n.get("last_event_at")),
            "heartbeat_age_seconds": beat_age,
            "live_channels": int(facts["live_channels"].get(n["name"], 0)),
            "served_by": n.get("instance") if served else None,
        })
    interventions = [
        {
            "id": r["id"],
            "node": r["node"],
            "supervisor": r["supervisor"],
            "agent": r["agent"],
            "mode": r["current_mode"],
            "since": iso(r["mode_since"] or r["started_at"]),
            "started_at": iso(r["started_at"]),
            "seconds": _age(now, _epoch(r["started_at"])),
        }
        for r in facts["interventions"]
    ]
    journal = local.get("journal_backlog") if local is not None else facts.get("journal_backlog")
    backlogs = {"journal": journal, "webhooks": facts.get("webhook_backlog")}
    info = dict(facts.get("daemon") or {})
    if local is not None and not info.get("version"):
        info.update(version=local.get("version"), started_at=local.get("started_at"))
    started = _epoch(info.get("started_at"))
    if not running:
        state = "not_running"
        stops = [n["stopped_at"] for n in nodes if stopped_cleanly(n)]
        if stops and max(stops) >= (newest or 0):
            why = f"stopped cleanly at {iso(max(stops))}"
        else:
            why = f"last heartbeat {_ago(_age(now, newest))}" if newest else "it never ran on this database"
        problems = ["daemon not running: " + why]
    else:
        state = "degraded" if problems else "healthy"
    return {
        "state": state,
        "checked_at": iso(now),
        "problems": problems,
        "daemon": {
            "running": running,
            "last_heartbeat_at": iso(newest),
            "heartbeat_age_seconds": _age(now, newest),
            "version": info.get("version"),
            "started_at": iso(started),
            "uptime_seconds": _age(now, started) if running and started else None,
        },
        "nodes": out_nodes,
        # when the daemon is not running, these are what it last recorded, not a live view
        "interventions": interventions,
        "backlogs": backlogs,
        # failed: given up after 24 h; `fsbarge webhooks list --state failed`, `fsbarge webhooks retry ID`
        "webhooks": {"pending": facts.get("webhook_backlog"), "failed": facts.get("webhook_failed")},
    }


# --------------------------------------------------------------------------- rendering


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m ago"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s ago"
    return f"{seconds:.1f}s ago"


def render_status(doc: Mapping[str, Any], fmt: str) -> str:
    """JSON (the document) or a text summary for a terminal. No trailing newline."""
    if fmt == "json":
        import json

        return json.dumps(doc, indent=2, ensure_ascii=False)
    d = doc["daemon"]
    head = {"healthy": "healthy", "degraded": "DEGRADED", "not_running": "DAEMON NOT RUNNING"}[doc["state"]]
    lines = [f"fsbarge status at {doc['checked_at']}: {head}"]
    lines += [f"  ! {p}" for p in doc["problems"]]
    version = d["version"] or "not recorded"
    uptime = _ago(d["uptime_seconds"]).removesuffix(" ago") if d["uptime_seconds"] is not None else "not recorded"
    beat = _ago(d["heartbeat_age_seconds"])
    lines.append(f"daemon: {'running' if d['running'] else 'not running'}, last heartbeat {beat}; version {version}, uptime {uptime}")
    if not d["running"]:
        lines.append(f"(what follows is what the daemon last recorded, not live; {len(doc['interventions'])} intervention(s) "
                     "were running and will be re-attached or closed when it starts)")
    rows: Sequence[Sequence[Any]] = [
        [n["name"], {True: "yes", False: "NO", None: "unknown"}[n["connected"]], n["connected_since"] or "-",
         _ago(n["last_event_age_seconds"]), n["live_channels"], n["served_by"] or "-"]
        for n in doc["nodes"]
    ]
    headers = ["node", "connected", "connected since", "last event", "live channels", "served by"]
    lines += ["", tabulate(rows, headers=headers, disable_numparse=True)
              if rows else "no node has ever been recorded"]
    lines += ["", "running interventions (who is monitoring whom):"]
    if doc["interventions"]:
        rows = [[i["id"], i["supervisor"] or "-", i["agent"] or "-", i["mode"] or "starting", i["since"], i["node"]]
                for i in doc["interventions"]]
        lines.append(tabulate(rows, headers=["id", "supervisor", "agent", "mode", "mode since", "node"], disable_numparse=True))
    else:
        lines.append("(none)")
    b = doc["backlogs"]
    lines += ["", "backlogs: " + ", ".join(f"{k} {'not recorded yet' if v is None else v}" for k, v in b.items())]
    hooks = doc.get("webhooks") or {}
    if hooks.get("failed"):
        lines.append(f"webhooks: {hooks['failed']} failed delivery(ies) given up after 24 h (fsbarge webhooks list --state failed)")
    return "\n".join(lines)
