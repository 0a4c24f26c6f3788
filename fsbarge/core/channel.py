"""One live leg as the mirror stores it: its columns, the directory user it belongs to (and how
strongly), and the leg read back from a ``show channels`` row after a (re)connect. The table of a
node's legs, kept up to date by events, is fsbarge.core.channels'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsbarge.core.wire import decode

__all__ = ["COLUMNS", "EAVESDROP_APPS", "Channel", "attribute_user", "channel_from_row"]

# How strongly a leg is tied to its directory user: the authenticated user of an
# inbound leg beats the dialled user of an outbound leg, which beats presence_id
# (FreeSWITCH copies dialed_user onto the *caller's* A-leg too when it bridges to
# user/<ext>, so dialed_user is only trusted on outbound legs).
RANK_NONE, RANK_PRESENCE, RANK_DIALED, RANK_AUTH = 0, 1, 2, 3

EAVESDROP_APPS = frozenset({"eavesdrop", "three_way"})

COLUMNS = (
    "uuid",
    "name",
    "direction",
    "state",
    "answer_state",
    "user",
    "dialed_user",
    "user_name",
    "presence_id",
    "caller_number",
    "callee_number",
    "destination",
    "peer_uuid",
    "call_uuid",
    "application",
    "application_data",
    "created_at",
    "answered_at",
)


class Channel:
    """One live leg, with the fields the mirror stores."""

    __slots__ = COLUMNS + ("rank", "apps", "ani", "held", "read_codec")

    def __init__(self, uuid: str) -> None:
        for slot in COLUMNS:
            setattr(self, slot, None)
        self.uuid = uuid
        self.rank = RANK_NONE
        self.ani: str | None = None  # the number presented at creation (never swapped with the callee's)
        self.held = False  # Channel-Call-State HELD: on hold, the agent is not talking on it
        self.read_codec: str | None = None  # from show channels only (not mirrored)
        self.apps: list[tuple[str, str | None]] = []  # running applications, innermost last

    def to_row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in COLUMNS}

    @property
    def answered(self) -> bool:
        return self.answer_state == "answered"

    @property
    def eavesdropping(self) -> bool:
        return self.application in EAVESDROP_APPS

    @property
    def still_eavesdropping(self) -> bool:
        """In a ``show channels`` row: is eavesdrop really running?

        FreeSWITCH quirk: the ``application`` column is written on CHANNEL_EXECUTE only, so it
        keeps saying ``eavesdrop`` after eavesdrop returned ('*', the target hung up) and the
        supervisor is back in park. A running eavesdrop reads the supervisor's audio as L16
        (switch_ivr_eavesdrop_session sets the read codec; captures 02), and restores the codec
        when it returns."""
        return self.eavesdropping and (self.read_codec is None or self.read_codec.upper() == "L16")

    def __repr__(self) -> str:
        return f"<Channel {self.uuid} {self.name} user={self.user}>"


def _user_part(presence_id: str | None) -> str | None:
    if not presence_id:
        return None
    user = presence_id.split("@", 1)[0]
    return user or None


def attribute_user(ch: Channel) -> None:
    """Set ``ch.user`` and ``ch.rank`` from the clues the leg carries."""
    if ch.direction == "inbound" and ch.user_name:
        ch.user, ch.rank = ch.user_name, RANK_AUTH
    elif ch.direction == "outbound" and ch.dialed_user:
        ch.user, ch.rank = ch.dialed_user, RANK_DIALED
    elif (user := _user_part(ch.presence_id)) is not None:
        ch.user, ch.rank = user, RANK_PRESENCE
    else:
        ch.user, ch.rank = None, RANK_NONE


_CALLSTATE_TO_ANSWER = {"ACTIVE": "answered", "HELD": "answered", "RINGING": "ringing", "EARLY": "early"}


def channel_from_row(row: Mapping[str, str]) -> Channel:
    """A channel from one row of ``show channels as json`` (values URL-encoded where FS escapes)."""
    ch = Channel(row["uuid"])
    ch.name = decode(row.get("name"))
    ch.direction = row.get("direction") or None
    ch.state = row.get("state") or None
    ch.answer_state = _CALLSTATE_TO_ANSWER.get(row.get("callstate", ""), "ringing")
    ch.presence_id = decode(row.get("presence_id")) or None
    ch.caller_number = decode(row.get("cid_num")) or None
    ch.callee_number = decode(row.get("callee_num")) or None
    ch.ani = decode(row.get("initial_cid_num")) or None
    ch.held = row.get("callstate") == "HELD"
    ch.destination = decode(row.get("dest")) or None
    ch.call_uuid = row.get("call_uuid") or None
    app = row.get("application") or None
    if app:
        ch.application = app
        ch.application_data = decode(row.get("application_data")) or None
        ch.apps = [(app, ch.application_data)]
    ch.read_codec = row.get("read_codec") or None
    epoch = row.get("created_epoch")
    ch.created_at = float(epoch) if epoch and epoch.isdigit() else None
    # show channels has no answer time; the best known is "answered by the resync".
    attribute_user(ch)
    return ch
