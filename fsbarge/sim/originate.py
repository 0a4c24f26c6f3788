"""The ``originate`` api (mod_commands) to ``user/<ext>``, and the phone's answer to it.

A mixin of :class:`fsbarge.sim.pbx.Pbx`, using it as a :class:`fsbarge.sim.host.OriginateHost`. The event order is that of the real runs in
tests/fixtures/realfs-captures/help-request-answered and help-request-unanswered:

- the leg: CHANNEL_OUTGOING, CHANNEL_STATE CS_INIT, CHANNEL_CREATE, CHANNEL_ORIGINATE, CHANNEL_STATE
  CS_ROUTING, PRESENCE_IN, CHANNEL_STATE CS_CONSUME_MEDIA, then the phone rings: CHANNEL_PROGRESS,
  CHANNEL_CALLSTATE RINGING;
- answered (a test calls :meth:`answer_originated`): CHANNEL_ANSWER, PRESENCE_IN, CHANNEL_CALLSTATE
  ACTIVE, CHANNEL_OUTGOING; the job's result ``+OK <uuid>``; CHANNEL_STATE CS_EXECUTE, then the
  ``&app()`` (``&park()``: CHANNEL_EXECUTE park, CHANNEL_PARK);
- ``originate_timeout`` seconds without an answer: CHANNEL_HANGUP NO_ANSWER, the result
  ``-ERR NO_ANSWER``, then the usual tail; ``uuid_kill`` while it rings: the same with its cause.

A ``bgapi`` job's BACKGROUND_JOB fires when the result is known, as FreeSWITCH's job thread does.
Not registered: ``-ERR USER_NOT_REGISTERED`` and no channel; not in the directory:
``-ERR SUBSCRIBER_ABSENT``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import gevent
import gevent.event

from .host import OriginateHost
from .legs import originated_answer_variables, originated_leg
from .model import Channel, new_uuid

if TYPE_CHECKING:  # the type checker sees what the mixin may use of its host; at run time the Pbx supplies it
    _Host = OriginateHost
else:
    _Host = object

_ORIGINATE = re.compile(r"^\s*(?:\{(?P<vars>[^}]*)\})?(?P<url>\S+)(?:\s+(?P<exten>\S+))?")
_APP = re.compile(r"^&([\w-]+)(?:\((.*)\))?$")
_USER = re.compile(r"^user/([^@/]+)(?:@(.*))?$")
DEFAULT_TIMEOUT = 60  # originate's default when no originate_timeout is given

USAGE = ("-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
         "[<cid_num>] [<timeout_sec>]\n")


@dataclass(eq=False)
class OriginateJob:
    """An originate under way: its result line is known when the leg answers or fails."""

    uuid: str | None
    ext: str
    app: tuple[str, str] | None  # (&app, its argument), or None for a dialplan extension
    exten: str
    result: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    timer: gevent.Greenlet | None = None
    listeners: list[Callable[[str], None]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.result.ready()

    def finish(self, output: str) -> None:
        if self.result.ready():
            return
        if self.timer is not None and self.timer is not gevent.getcurrent():
            self.timer.kill(block=False)
        self.result.set(output)
        for listener in self.listeners:
            listener(output)

    def then(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(output)`` when the result is known (at once if it is)."""
        if self.result.ready():
            listener(self.result.get())
        else:
            self.listeners.append(listener)


def parse_variables(text: str) -> dict[str, str]:
    """``{a=1,b='x, y'}`` as switch_ivr_originate reads it: comma-separated, single quotes group."""
    out: dict[str, str] = {}
    items, current, quoted = [], "", False
    for c in text:
        if c == "'":
            quoted = not quoted
            continue
        if c == "," and not quoted:
            items.append(current)
            current = ""
            continue
        current += c
    items.append(current)
    for item in items:
        name, sep, value = item.partition("=")
        if sep and name.strip():
            out[name.strip()] = value
    return out


class OriginateMixin(_Host):
    """``originate`` to registered phones (only ``user/<ext>`` endpoints)."""

    originating: dict[str, OriginateJob]
    originate_log: list[dict[str, Any]]

    def originate(self, arg: str) -> OriginateJob | str:
        """The job of ``originate <arg>``, or the reply text at once (usage errors)."""
        m = _ORIGINATE.match(arg or "")
        if not m or not m["exten"]:
            return USAGE
        params = parse_variables(m["vars"] or "")
        exten = m["exten"]
        app_m = _APP.match(exten)
        app = (app_m[1], app_m[2] or "") if app_m else None
        user_m = _USER.match(m["url"])
        ext = user_m[1] if user_m else m["url"]
        job = OriginateJob(params.get("origination_uuid"), ext, app, exten)
        log = {"uuid": job.uuid, "ext": ext, "variables": dict(params), "result": None}
        self.originate_log.append(log)
        job.then(lambda out: log.__setitem__("result", out.strip()))
        if user_m is None:
            job.finish("-ERR CHANNEL_UNACCEPTABLE\n")
            return job
        user = self.directory.get(ext)
        if user is None:
            job.finish("-ERR SUBSCRIBER_ABSENT\n")
            return job
        if not user.registered:
            job.finish("-ERR USER_NOT_REGISTERED\n")
            return job
        uuid = job.uuid or new_uuid()
        if uuid in self.channels:
            job.finish("-ERR DESTINATION_OUT_OF_ORDER\n")
            return job
        job.uuid = log["uuid"] = uuid
        b = originated_leg(user, uuid, params, self.clock(), self.new_session_id())
        self.channels[uuid] = b
        self.count_session()
        self.originating[uuid] = job
        b.state, b.state_number = "CS_NONE", 1
        self.fire("CHANNEL_OUTGOING", b)
        b.show_presence = True
        self.set_state(b, "CS_INIT", 1)
        b.state_number = 2
        self.fire("CHANNEL_CREATE", b)
        self.fire("CHANNEL_ORIGINATE", b)
        self.set_state(b, "CS_ROUTING", 2)
        b.state_number = 7
        self.presence_in(b, "CS_ROUTING", "progressing")
        self.set_state(b, "CS_CONSUME_MEDIA", 7)
        self.codec_events(b)
        # 180 Ringing from the phone
        b.profile.progress = self.now_us()
        self.fire("CHANNEL_PROGRESS", b)
        self.set_callstate(b, "RINGING")
        try:
            timeout = int(params.get("originate_timeout", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
        if timeout > 0:
            job.timer = gevent.spawn_later(timeout, self._originate_timeout, b, job)
        return job

    def ringing_originated(self) -> list[Channel]:
        return [self.channels[u] for u, job in self.originating.items() if u in self.channels and not job.done]

    def _originate_timeout(self, b: Channel, job: OriginateJob) -> None:
        """originate_timeout: nobody answered; the leg goes down with NO_ANSWER."""
        if job.done or not b.alive:
            return
        self.hangup_channel(b, "NO_ANSWER")

    def originate_failed(self, ch: Channel, cause: str) -> None:
        """Called as a ringing originated leg is marked hung up: the job fails with the cause."""
        job = self.originating.pop(ch.uuid, None)
        if job is not None:
            job.finish(f"-ERR {cause}\n")

    def answer_originated(self, b: Channel) -> None:
        """The phone answers (200 OK): the originate succeeds and the leg runs its &app() (or extension)."""
        job = self.originating.get(b.uuid)
        if job is None or job.done or not b.alive:
            return
        del self.originating[b.uuid]
        user = self.directory[b.user]
        b.variables.update(originated_answer_variables(b, user))
        # FreeSWITCH flips the caller ID on answer: the phone's answer name becomes the caller
        b.profile.callee_id_name, b.profile.callee_id_number = b.profile.caller_id_name, b.profile.caller_id_number
        b.callee_name, b.callee_num = user.callee_name, user.ext
        b.variables["channel_cid_flipped"] = "yes"
        self.mark_answered(b)
        self.fire("CHANNEL_OUTGOING", b)
        job.finish(f"+OK {b.uuid}\n")
        b.hit_dialplan = True
        if job.app is not None:
            b.dialplan = deque([job.app])
        else:
            b.profile.destination_number = job.exten
            b.dialplan = deque(self.route(b) or [])
        b.set_var("current_application", None)
        self.set_state(b, "CS_EXECUTE", 4)
        self.pump(b)

