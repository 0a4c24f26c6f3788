"""The live channel table of one FreeSWITCH node: apply events, answer "which leg is agent X's call".
One leg (its columns, its user, a ``show channels`` row read back) is fsbarge.core.channel's.

Pure and in memory; the service copies the changes into the database in batches
(``take_changes``). Every operation is a dict lookup, so the cost of an event
does not grow with the number of live channels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from fsbarge.core.channel import COLUMNS, EAVESDROP_APPS, Channel, attribute_user, channel_from_row  # noqa: F401 - importable from here
from fsbarge.core.events import Event

__all__ = ["Channel", "ChannelTable", "attribute_user", "channel_from_row"]

# Events that never change the mirror: skip them before any work.
_NO_MIRROR = frozenset({"DTMF", "MEDIA_BUG_START", "MEDIA_BUG_STOP", "HEARTBEAT", "BACKGROUND_JOB", "SHUTDOWN"})
_ENDING = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})


class ChannelTable:
    """Live channels of one node, plus the changes not yet written to the database."""

    def __init__(self, node: str, remember_ended: int = 20000) -> None:
        self.node = node
        self.channels: dict[str, Channel] = {}
        self._by_user: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        # Events keep arriving for a leg after CHANNEL_HANGUP (HANGUP_COMPLETE,
        # EXECUTE_COMPLETE, DESTROY...): remember recent ends so they do not resurrect it.
        self._ended: set[str] = set()
        self._ended_order: deque[str] = deque()
        self._remember = remember_ended

    def __len__(self) -> int:
        return len(self.channels)

    def get(self, uuid: str | None) -> Channel | None:
        return self.channels.get(uuid) if uuid else None

    # -- applying events -------------------------------------------------

    def apply(self, ev: Event) -> Channel | None:
        """Apply one event; return the channel it touched (None if none)."""
        name = ev.name
        if name in _NO_MIRROR:
            return None
        uuid = ev.uuid
        if not uuid:
            return None
        if name == "CHANNEL_UUID" and ev.old_uuid:
            self._rename(ev.old_uuid, uuid)
        if name in _ENDING or ev.answer_state == "hangup":
            self._end(uuid)
            return None
        ch = self.channels.get(uuid)
        if ch is None:
            if uuid in self._ended:
                return None
            ch = Channel(uuid)
            self.channels[uuid] = ch
            ch.created_at = ev.created_time or ev.timestamp
        self._update_common(ch, ev)
        if ch.answered_at is None and (name == "CHANNEL_ANSWER" or ev.answer_state == "answered"):
            ch.answered_at = ev.answered_time or ev.timestamp
        if name == "CHANNEL_EXECUTE":
            ch.apps.append((ev.application or "", ev.application_data))
            ch.application, ch.application_data = ev.application, ev.application_data
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            self._app_done(ch, ev.application)
        elif name == "CHANNEL_BRIDGE":
            self._bridge(ev.bridge_a or uuid, ev.bridge_b or ev.other_uuid)
        elif name == "CHANNEL_UNBRIDGE":
            self._unbridge(ev.bridge_a or uuid, ev.bridge_b or ev.other_uuid)
        self._dirty.add(uuid)
        return ch

    def _update_common(self, ch: Channel, ev: Event) -> None:
        if ev.channel_name:
            ch.name = ev.channel_name
        if ev.direction:
            ch.direction = ev.direction
        if ev.state:
            ch.state = ev.state
        if ev.answer_state:
            ch.answer_state = ev.answer_state
        if ev.call_state:
            ch.held = ev.call_state == "HELD"
        if ev.call_uuid:
            ch.call_uuid = ev.call_uuid
        if ev.caller_number:
            ch.caller_number = ev.caller_number
        if ev.callee_number:
            ch.callee_number = ev.callee_number
        if ev.ani and ch.ani is None:
            ch.ani = ev.ani
        if ev.destination:
            ch.destination = ev.destination
        if ev.presence_id:
            ch.presence_id = ev.presence_id
        # Channel variables are sticky in FreeSWITCH; an event that lacks one (DTMF
        # events carry none at all) does not mean it was unset.
        if ev.user_name:
            ch.user_name = ev.user_name
        if ev.dialed_user:
            ch.dialed_user = ev.dialed_user
        old = ch.user
        attribute_user(ch)
        if ch.user != old:
            self._index(ch.uuid, old, ch.user)

    def _app_done(self, ch: Channel, app: str | None) -> None:
        for i in range(len(ch.apps) - 1, -1, -1):
            if ch.apps[i][0] == app:
                del ch.apps[i]
                break
        ch.application, ch.application_data = ch.apps[-1] if ch.apps else (None, None)

    def _bridge(self, a: str | None, b: str | None) -> None:
        ca, cb = self.get(a), self.get(b)
        if ca is not None and b:
            ca.peer_uuid = b
            self._dirty.add(ca.uuid)
        if cb is not None and a:
            cb.peer_uuid = a
            self._dirty.add(cb.uuid)

    def _unbridge(self, a: str | None, b: str | None) -> None:
        for leg in (self.get(a), self.get(b)):
            if leg is not None:
                leg.peer_uuid = None
                self._dirty.add(leg.uuid)

    def _index(self, uuid: str, old: str | None, new: str | None) -> None:
        if old is not None:
            members = self._by_user.get(old)
            if members is not None:
                members.discard(uuid)
                if not members:
                    del self._by_user[old]
        if new is not None:
            self._by_user.setdefault(new, set()).add(uuid)

    def _forget(self, uuid: str) -> Channel | None:
        ch = self.channels.pop(uuid, None)
        if ch is not None:
            self._index(uuid, ch.user, None)
        self._dirty.discard(uuid)
        return ch

    def _end(self, uuid: str) -> None:
        ch = self._forget(uuid)
        if uuid not in self._ended:
            self._ended.add(uuid)
            self._ended_order.append(uuid)
            if len(self._ended_order) > self._remember:
                self._ended.discard(self._ended_order.popleft())
        if ch is not None:
            self._removed.add(uuid)
            peer = self.get(ch.peer_uuid)
            if peer is not None and peer.peer_uuid == uuid:
                peer.peer_uuid = None
                self._dirty.add(peer.uuid)

    def _rename(self, old: str, new: str) -> None:
        ch = self._forget(old)
        if ch is None:
            return
        self._removed.add(old)
        ch.uuid = new
        self.channels[new] = ch
        self._index(new, None, ch.user)
        self._dirty.add(new)

    # -- resync ----------------------------------------------------------

    def replace_all(self, channels: Iterable[Channel]) -> list[str]:
        """Make the table exactly ``channels`` (a resync); return uuids that vanished."""
        fresh = {ch.uuid: ch for ch in channels}
        by_call: dict[str, list[Channel]] = {}
        for ch in fresh.values():
            if ch.call_uuid:
                by_call.setdefault(ch.call_uuid, []).append(ch)
        for legs in by_call.values():
            # show channels has no peer column; two legs sharing a call uuid are bridged.
            if len(legs) == 2:
                legs[0].peer_uuid, legs[1].peer_uuid = legs[1].uuid, legs[0].uuid
        vanished = [u for u in self.channels if u not in fresh]
        for uuid in vanished:
            self._end(uuid)
        for uuid, ch in fresh.items():
            old = self.channels.get(uuid)
            if old is not None:
                # Keep what events told us and a snapshot cannot (answer time, dialed user).
                ch.answered_at = old.answered_at
                ch.user_name = ch.user_name or old.user_name
                ch.dialed_user = ch.dialed_user or old.dialed_user
                attribute_user(ch)
                self._forget(uuid)
            self._ended.discard(uuid)
            if ch.answered and ch.answered_at is None:
                ch.answered_at = ch.created_at
            self.channels[uuid] = ch
            self._index(uuid, None, ch.user)
        self._dirty = set(self.channels)
        return vanished

    # -- queries ---------------------------------------------------------

    def take_changes(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Rows to upsert and uuids to delete since the last call."""
        upserts = [self.channels[u].to_row() for u in self._dirty if u in self.channels]
        removed = list(self._removed)
        self._dirty = set()
        self._removed = set()
        return upserts, removed

    @property
    def has_changes(self) -> bool:
        return bool(self._dirty or self._removed)

    def legs_of(self, user: str) -> list[Channel]:
        return [self.channels[u] for u in self._by_user.get(user, ())]

    def may_be_own_leg(self, ch: Channel, ext: str) -> bool:
        """Whether ``ch``, a leg attributed to ``ext``, is one agent_leg chooses among: answered,
        no eavesdrop, and not the lesser-attributed half of a call whose other leg is ext's too."""
        if not ch.answered or ch.eavesdropping:
            return False
        peer = self.get(ch.peer_uuid)
        return not (peer is not None and peer.user == ext and peer.rank > ch.rank)

    def agent_leg(self, ext: str) -> Channel | None:
        """Extension ``ext``'s own live, answered call leg, or None.

        Eavesdrop must target exactly this leg: key 2 audio goes to the eavesdropped
        leg, so picking the customer's leg would whisper to the customer.
        """
        best: Channel | None = None
        best_key: tuple[int, int, int, float] | None = None
        for ch in self.legs_of(ext):
            if not self.may_be_own_leg(ch, ext):
                continue
            # The call the agent is talking on beats one on hold (the phone's hold makes FreeSWITCH
            # show the PBX leg HELD), then the surer attribution, then a bridged leg, then the newest.
            key = (0 if ch.held else 1, ch.rank, 1 if ch.peer_uuid else 0, ch.answered_at or 0.0)
            if best_key is None or key > best_key:
                best, best_key = ch, key
        return best
