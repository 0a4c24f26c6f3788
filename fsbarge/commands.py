"""Effects -> exact Event Socket command text. All quoting and escaping lives here."""

from __future__ import annotations

from .barge import Effect, Execute, SendKey

__all__ = ["sendevent_key", "sendmsg", "to_command"]


def _clean(value: str) -> str:
    # A header value must stay on its line: a newline would end the header block
    # and let the rest be read as another command.
    if "\n" in value or "\r" in value:
        raise ValueError(f"newline in ESL header value {value[:40]!r}")
    return value


def sendmsg(uuid: str, app: str, arg: str | None = None, *, event_uuid: str | None = None) -> str:
    """``sendmsg`` executing ``app`` on channel ``uuid`` (FreeSWITCH echoes Event-UUID as Application-UUID)."""
    lines = [f"sendmsg {_clean(uuid)}", "call-command: execute", f"execute-app-name: {_clean(app)}"]
    if arg:
        lines.append(f"execute-app-arg: {_clean(arg)}")
    if event_uuid:
        lines.append(f"Event-UUID: {_clean(event_uuid)}")
    return "\n".join(lines)


def sendevent_key(uuid: str, key: str) -> str:
    """Switch a running eavesdrop: a sendevent naming the channel is queued to it, not fired (captures 03)."""
    return "\n".join(
        [
            "sendevent CUSTOM",
            "Event-Subclass: fsbarge::control",
            f"Unique-ID: {_clean(uuid)}",
            f"eavesdrop-command: {_clean(key)}",
        ]
    )


def to_command(effect: Effect) -> str | None:
    """The ESL command for an effect that talks to FreeSWITCH (None for audit effects)."""
    if isinstance(effect, Execute):
        return sendmsg(effect.uuid, effect.app, effect.arg, event_uuid=effect.event_uuid)
    if isinstance(effect, SendKey):
        return sendevent_key(effect.uuid, effect.key)
    return None
