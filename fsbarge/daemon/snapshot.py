"""What the resync asks FreeSWITCH (a thin IO adapter): ``show channels as json`` as channels,
the Core-UUID, and the variables ``show channels`` does not carry, read with pipelined
``uuid_getvar`` (one write for all legs, not two round trips per leg)."""

from __future__ import annotations

import json
from typing import Any

from fsbarge.core.channels import Channel, attribute_user, channel_from_row
from fsbarge.daemon.esl.connection import ConnectError
from fsbarge.daemon.esl.session import EslSession

__all__ = ["REQUEST_VARS", "channels", "core_uuid", "waiting_requests"]

REQUEST_VARS = ("fsbarge_mode", "fsbarge_target", "user_name", "fsbarge_ticket")


def _var(reply: str) -> str | None:
    """A ``uuid_getvar``/``global_getvar`` reply as a value: None when unset (``_undef_``) or an error."""
    reply = reply.strip()
    return None if not reply or reply == "_undef_" or reply.startswith("-ERR") else reply


def core_uuid(session: EslSession) -> str | None:
    return _var(session.api("global_getvar core_uuid"))


def channels(session: EslSession) -> list[Channel]:
    """``show channels as json`` as channels, attributing the legs presence_id does not."""
    body = session.api_bytes("show channels as json")

    def row_to_channel(obj: dict[str, Any]) -> Any:
        # Turn each row into a Channel as soon as it is parsed: with 10,000 rows,
        # holding every row dict at once would double the daemon's peak memory.
        if "uuid" in obj and "callstate" in obj and isinstance(obj["uuid"], str) and obj["uuid"]:
            return channel_from_row(obj)
        return obj

    try:
        data = json.loads(body, object_hook=row_to_channel) if body.strip() else {}
    except ValueError as exc:
        raise ConnectError(f"unreadable 'show channels as json' reply: {body[:60]!r}") from exc
    del body
    if not isinstance(data, dict):
        raise ConnectError("unexpected 'show channels as json' reply")
    fresh = [c for c in data.get("rows", []) if isinstance(c, Channel)]
    del data
    # show channels carries presence_id but not dialed_user (SPEC.md): a trunk caller's leg, say.
    unknown = [c for c in fresh if c.user is None]
    replies = session.apis([f"uuid_getvar {c.uuid} {var}" for c in unknown for var in ("user_name", "dialed_user")])
    for i, ch in enumerate(unknown):
        ch.user_name, ch.dialed_user = _var(replies[2 * i]), _var(replies[2 * i + 1])
        attribute_user(ch)
    return fresh


def waiting_requests(session: EslSession, uuids: list[str]) -> dict[str, dict[str, str | None]]:
    """The feature-code variables of parked channels (the CHANNEL_PARK we missed), pipelined."""
    n = len(REQUEST_VARS)
    replies = session.apis([f"uuid_getvar {u} {var}" for u in uuids for var in REQUEST_VARS])
    return {
        uuid: dict(zip(REQUEST_VARS, (_var(r) for r in replies[i * n : i * n + n]), strict=True))
        for i, uuid in enumerate(uuids)
    }
