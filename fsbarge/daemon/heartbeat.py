"""What the daemon says of itself each watchdog round: the line systemd shows (``STATUS=``), each
served node's row in the database (``fsbarge status`` and the metrics read it), and the status
file on local disk, which speaks for the daemon when the database cannot be written or read."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from fsbarge import __version__
from fsbarge.daemon.health import Health, problems_json, write_status_file
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.mirror import Mirror
from fsbarge.daemon.nodes import Nodes
from fsbarge.daemon.nojournal import UnavailableJournal
from fsbarge.daemon.shipper import Shipper

__all__ = ["Heartbeat"]


class Heartbeat:
    """The daemon's own report. ``journal`` is asked each time: it is replaced when a journal the
    disk refused at start opens; ``several``: instances share the nodes (PostgreSQL ownership)."""

    def __init__(
        self, *, instance: str, started: float, health: Health, nodes: Nodes, mirror: Mirror, shipper: Shipper,
        journal: Callable[[], Journal | UnavailableJournal], status_file: Path, several: bool,
    ) -> None:
        self.instance = instance
        self.started = started
        self.health = health
        self.nodes = nodes
        self.mirror = mirror
        self.shipper = shipper
        self.journal = journal
        self.status_file = status_file
        self.several = several

    def status_line(self) -> str:
        serving = self.nodes.serving()
        connected = len(self.nodes.connected())
        text = f"{connected}/{len(serving)} nodes connected; audit backlog {self.shipper.backlog}"
        if self.several:
            text = f"serving {len(serving)}/{len(self.nodes)} nodes as {self.instance}; " + text
        if self.shipper.retrier.last_error:
            text += f"; database: {self.shipper.retrier.last_error}"
        if self.health.problems:
            text += "; problems: " + "; ".join(self.health.problems)
        return text

    def node_row(self, node: str) -> None:
        """A node's row in the database says this daemon is alive (each watchdog round)."""
        self.mirror.status(
            node, journal_backlog=self.journal().backlog, daemon_version=__version__,
            daemon_started_at=self.started, instance=self.instance, problems=problems_json(self.health.problems),
        )

    def write_status_file(self, stopped_at: float | None = None) -> None:
        """The heartbeat on local disk: `fsbarge status` on this host reads it when the database
        cannot be written or read, so a serving daemon is never reported as not running."""
        doc = {
            "pid": os.getpid(), "instance": self.instance, "at": time.time(), "started_at": self.started,
            "version": __version__, "stopped_at": stopped_at, "problems": self.health.problems,
            "journal_backlog": self.journal().backlog, "serving": self.nodes.serving(),
            "connected": self.nodes.connected(),
        }
        try:
            write_status_file(self.status_file, doc)
        except OSError as exc:
            self.health.report("status file", f"cannot write the status file {self.status_file}: {exc.strerror or exc}")
        else:
            self.health.clear("status file")
