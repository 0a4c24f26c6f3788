"""Every audit-journal change as a frozen dataclass; the one serialisation to and from its line is
in :mod:`fsbarge.core.changeline`.

Why: a change used to be a dict with a ``kind`` key, built in two places and read by four
if-chains (the journal's fold, the store, the outbox, the log lines), so a field's meaning could
drift between them. Here each kind is a type; readers dispatch on the type, and only
:func:`to_line` / :func:`from_line` know the JSON shape written in the journal (and the quarantine
file). That shape is unchanged: each class writes its keys in the order the daemon always wrote
them, ``seq`` last, so old journals read the same and new lines are byte-for-byte what they were.

Pure: no IO, stdlib and the vocabulary only (the journal adds the checksum and the file).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypedDict

from fsbarge.core.terms import EndReason, HelpOutcome, HelpSource, ModeSource, Origin, Outcome

__all__ = [
    "AuditRecord", "Change", "Closed", "Damaged", "Decided", "Direct", "HelpClosed", "HelpOpened", "HelpRecord",
    "ModeAdded", "NodeSeen", "Opened", "Other", "SHIPPED", "Shipped", "ident", "with_seq",
]

# What each kind is called on its journal line ("kind": ...).
OPEN, MODE, CLOSE, HELP_OPEN, HELP_CLOSE = "open", "mode", "close", "help_open", "help_close"
NODE, DECIDED, DAMAGED = "node", "decided", "damaged"


class _Line:
    """Read access by journal field name (``c["uid"]``, ``c.get("kind")``) for tests and tools
    that look at lines; fsbarge itself reads the attributes (tests/test_architecture.py)."""

    __slots__ = ()
    kind: ClassVar[str]

    def __getitem__(self, key: str) -> Any:
        from fsbarge.core.changeline import to_line  # the serialisation imports these types

        return to_line(self)[key]  # type: ignore[arg-type]

    def get(self, key: str, default: Any = None) -> Any:
        from fsbarge.core.changeline import to_line

        return to_line(self).get(key, default)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        from fsbarge.core.changeline import to_line

        return iter(to_line(self))  # type: ignore[arg-type]

    def keys(self) -> Any:
        from fsbarge.core.changeline import to_line

        return to_line(self).keys()  # type: ignore[arg-type]


class AuditRecord(TypedDict, total=False):
    """What an opening carries: the intervention's record as first written (fsbarge.core.barge builds
    it; the store's columns). ``ended_at`` only on a refusal closed at once."""

    node: str
    supervisor: str | None
    supervisor_uuid: str
    agent: str | None
    target_uuid: str | None
    customer: str | None
    requested_mode: str
    outcome: Outcome
    reason: str | None
    started_at: float
    ended_at: float | None
    application_uuid: str | None
    origin: Origin
    supervisor_node: str | None  # a cross-node barge: where the supervisor's call came in
    team: str | None
    help_uid: str  # the help request this answers


class HelpRecord(TypedDict, total=False):
    """What a help request's opening carries (fsbarge.core.help builds it)."""

    node: str
    agent: str | None
    agent_uuid: str
    customer: str | None
    requested_at: float | None
    source: HelpSource
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened(_Line):
    """An intervention attempt was decided: its record as first written (``record["outcome"]``
    ``active`` for one that started, a refusal's final outcome otherwise)."""

    kind: ClassVar[str] = OPEN
    id: str
    uid: str
    node: str | None = None
    record: AuditRecord = field(default_factory=lambda: AuditRecord())
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeAdded(_Line):
    """A mode entered (or a key refused) on an open intervention. ``notified``: who heard the
    notification tone; None when the writer did not say (a takeover copies history without it)."""

    kind: ClassVar[str] = MODE
    id: str
    uid: str
    node: str | None = None
    mode: str  # a terms.Mode, or terms.UNKNOWN_MODE in a gap
    at: float
    source: ModeSource
    refused: bool = False
    notified: tuple[str, ...] | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(_Line):
    """An intervention ended (``reason`` None keeps the one on record)."""

    kind: ClassVar[str] = CLOSE
    id: str
    uid: str
    node: str | None = None
    outcome: Outcome
    ended_at: float | None
    end_reason: EndReason | None = None
    reason: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HelpOpened(_Line):
    """An agent asked for help: the request's record."""

    kind: ClassVar[str] = HELP_OPEN
    id: str
    uid: str
    node: str | None = None
    record: HelpRecord = field(default_factory=lambda: HelpRecord())
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HelpClosed(_Line):
    """A help request was answered or gave up (``intervention_uid``: the barge that answered it)."""

    kind: ClassVar[str] = HELP_CLOSE
    id: str
    uid: str
    node: str | None = None
    outcome: HelpOutcome
    answered_by: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    intervention_uid: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSeen(_Line):
    """A node's Core-UUID and/or when events were last processed (for the resync after a kill);
    ``summary``: rewritten by a compaction. Not shipped."""

    kind: ClassVar[str] = NODE
    node: str
    core_uuid: str | None = None
    last_seen: float | None = None
    summary: bool = False
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decided(_Line):
    """Supervisor channels whose request was decided (a compaction's summary). Not shipped."""

    kind: ClassVar[str] = DECIDED
    uuids: tuple[str, ...]
    summary: bool = False
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Damaged(_Line):
    """Stands for a journal line that could not be trusted: where it was, why, and its bytes
    (the evidence; never applied, only entered in the hash chain)."""

    kind: ClassVar[str] = DAMAGED
    uid: ClassVar[None] = None
    id: str
    seq: int = 0
    journal: str
    offset: int
    size: int
    why: str
    raw: str
    found_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Other(_Line):
    """A line of a kind this version does not know: kept as read, never applied."""

    fields: Mapping[str, Any]
    uid: ClassVar[None] = None

    @property
    def kind(self) -> Any:  # type: ignore[override]
        return self.fields.get("kind")

    @property
    def seq(self) -> Any:
        return self.fields.get("seq")


@dataclass(frozen=True, slots=True, kw_only=True)
class Direct(_Line):
    """A write through the store's own API (tests, tools), handed to its hooks: it carries no
    content, the record it wrote speaks for it. Never a journal line."""

    kind: str  # type: ignore[misc]
    id: str
    uid: ClassVar[None] = None
    node: ClassVar[None] = None


Change = Opened | ModeAdded | Closed | HelpOpened | HelpClosed | NodeSeen | Decided | Damaged | Other
#: the changes the shipper brings to the database (the others are the daemon's own state)
Shipped = Opened | ModeAdded | Closed | HelpOpened | HelpClosed | Damaged
SHIPPED: tuple[type, ...] = (Opened, ModeAdded, Closed, HelpOpened, HelpClosed, Damaged)


def ident(change: Change | Direct) -> str | None:
    """A change's unique id (None for the daemon's own state: node, decided)."""
    return getattr(change, "id", None)


_COPIED = {cls: tuple(f.name for f in fields(cls) if f.name != "seq")
           for cls in (Opened, ModeAdded, Closed, HelpOpened, HelpClosed, NodeSeen, Decided, Damaged)}


def with_seq(change: Change, seq: int) -> Change:
    """The change numbered for its place in the journal (a copy: changes are frozen). Every
    appended change passes here, so this copies its slots directly, twice as fast as
    dataclasses.replace."""
    if isinstance(change, Other):
        return Other(fields={**change.fields, "seq": seq})
    cls = type(change)
    new = object.__new__(cls)
    for name in _COPIED[cls]:
        object.__setattr__(new, name, getattr(change, name))
    object.__setattr__(new, "seq", seq)
    return new
