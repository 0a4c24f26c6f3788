"""What the journal shipper (fsbarge.daemon.shipper) shows in health for as long as it holds:
the changes set aside in the quarantine, and the journal's damaged lines with the records rebuilt
from the changes that followed them. Said once and kept, not logged a second at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsbarge.daemon.health import Health
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.quarantine import Quarantine

__all__ = ["ShipReports"]


class ShipReports:
    def __init__(self, journal: Callable[[], Journal], quarantine: Quarantine, health: Health, log: Any) -> None:
        self.journal = journal  # the shipper's journal now (the daemon swaps it in once it can open one)
        self.quarantined = quarantine
        self.health = health
        self.log = log
        self.rebuilt_records: list[tuple[str, str, int]] = []

    def watch_quarantine(self) -> None:
        """A retry (another process) rewrote the file: what it applied is no longer a problem."""
        if self.quarantined.refresh():
            self.quarantine()

    def quarantine(self) -> None:
        summary = self.quarantined.summary()
        if summary is None:
            self.health.clear("quarantine")
        else:
            self.health.report("quarantine", summary, path=str(self.quarantined.path))

    def rebuilt(self, rebuilt: list[tuple[str, str, int]]) -> None:
        for record_type, uid, record_id in rebuilt:
            what = "an intervention" if record_type == "intervention" else "a help request"
            self.log.error(
                f"{what} whose opening was lost with a damaged journal line was rebuilt from its later changes",
                uid=uid, record=record_id,
            )
        if rebuilt:
            self.rebuilt_records += rebuilt
            self.damage()

    def damage(self) -> None:
        """Lines of the journal that could not be trusted: shown for as long as this daemon runs
        (the audit chain keeps the record for good: ``fsbarge audit verify``)."""
        damage = self.journal().damage
        if not damage:
            return
        first = damage[0]
        lines = "1 damaged line" if len(damage) == 1 else f"{len(damage)} damaged lines"
        text = f"the audit journal had {lines} (first at byte {first.offset} of {first.journal}: {first.why}); what it held is lost"
        if self.rebuilt_records:
            ids = ", ".join(f"#{rid}" if rtype == "intervention" else f"help #{rid}" for rtype, _, rid in self.rebuilt_records)
            text += f"; rebuilt from later changes: {ids}"
        self.health.report("journal damage", text + " (recorded in the audit chain: fsbarge audit verify)")
