"""Effects -> exact Event Socket command text. All quoting and escaping lives here."""

from __future__ import annotations

from fsbarge.core.effects import Effect, Execute, MixTone, SendKey, StopTone
from fsbarge.core.help import Kill, Originate
from fsbarge.core.notify import NOTIFY_LIMIT

__all__ = ["STOP_TONE_GONE", "mix_tone", "sendevent_key", "sendmsg", "stop_tone", "to_command"]


def _clean(value: str) -> str:
    # A header value must stay on its line: a newline would end the header block
    # and let the rest be read as another command.
    if "\n" in value or "\r" in value:
        raise ValueError(f"newline in ESL header value {value[:40]!r}")
    return value


def sendmsg(
    uuid: str, app: str, arg: str | None = None, *, event_uuid: str | None = None, event_lock: bool = False
) -> str:
    """``sendmsg`` executing ``app`` on channel ``uuid`` (FreeSWITCH echoes Event-UUID as Application-UUID).

    ``event_lock``: no other sendmsg to the channel runs until ``app`` has returned (CF_EVENT_LOCK;
    without it an application that parses events as it runs, such as playback, runs the next
    queued sendmsg from inside itself: fsbarge.core.barge.play_then_hang_up)."""
    lines = [f"sendmsg {_clean(uuid)}", "call-command: execute", f"execute-app-name: {_clean(app)}"]
    if arg:
        lines.append(f"execute-app-arg: {_clean(arg)}")
    if event_uuid:
        lines.append(f"Event-UUID: {_clean(event_uuid)}")
    if event_lock:
        lines.append("event-lock: true")
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


def mix_tone(uuid: str, tone: str, seconds: int = NOTIFY_LIMIT) -> str:
    """Mix ``tone`` into what the phone of channel ``uuid`` hears, for at most ``seconds``.

    ``uuid_displace`` adds a media bug on the channel's write side (what goes to its phone; an
    ``r`` flag would take the read side, what the others hear from it); ``m`` mixes the file
    into the audio instead of replacing it, so the call and an eavesdrop on the leg go on. The
    bug goes when the tone ends or after ``seconds`` (src/switch_ivr_async.c). ``bgapi``: the
    reply comes at once, not when the tone has played.
    """
    if any(ch.isspace() for ch in tone):
        raise ValueError(f"a displaced tone cannot contain spaces: {tone[:40]!r}")
    return f"bgapi uuid_displace {_clean(uuid)} start {_clean(tone)} {int(seconds)} m"


def stop_tone(uuid: str, tone: str) -> str:
    """Remove a displace still running with this file (FreeSWITCH refuses a second one).

    ``api``, not ``bgapi``: each bgapi job runs in a thread of its own, so a stop could run after
    the start that follows it. A tone that already ended answers ``STOP_TONE_GONE``."""
    return f"api uuid_displace {_clean(uuid)} stop {_clean(tone)}"


STOP_TONE_GONE = "-ERR Cannot stop displace session!"  # mod_commands: nothing of that file is running


def originate_help(uuid: str, supervisor: str, agent: str, help_uid: str, ring_seconds: int) -> str:
    """Ring ``user/<supervisor>`` showing ``Help <agent>``; the answered leg parks, where the
    daemon sees it (CHANNEL_PARK) and starts the whisper. ``origination_uuid``: we know the leg
    before it exists; ``originate_timeout``: the phone stops ringing with the request."""
    for value in (supervisor, agent, help_uid, uuid):
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"unexpected characters in an originate value: {value[:40]!r}")
    variables = ",".join([
        f"origination_uuid={uuid}",
        f"origination_caller_id_name='Help {agent}'",
        f"origination_caller_id_number={agent}",
        f"fsbarge_help={help_uid}",
        f"originate_timeout={int(ring_seconds)}",
    ])
    return f"bgapi originate {{{variables}}}user/{supervisor} &park()"


def kill(uuid: str) -> str:
    """Hang a leg up (a supervisor's phone still ringing for a request that ended)."""
    return f"bgapi uuid_kill {_clean(uuid)} ORIGINATOR_CANCEL"


def to_command(effect: Effect) -> str | None:
    """The ESL command for an effect that talks to FreeSWITCH (None for audit effects)."""
    if isinstance(effect, Execute):
        return sendmsg(effect.uuid, effect.app, effect.arg, event_uuid=effect.event_uuid, event_lock=effect.event_lock)
    if isinstance(effect, SendKey):
        return sendevent_key(effect.uuid, effect.key)
    if isinstance(effect, MixTone):
        return mix_tone(effect.uuid, effect.tone)
    if isinstance(effect, StopTone):
        return stop_tone(effect.uuid, effect.tone)
    if isinstance(effect, Originate):
        return originate_help(effect.uuid, effect.supervisor, effect.agent, effect.help_uid, effect.ring_seconds)
    if isinstance(effect, Kill):
        return kill(effect.uuid)
    return None
