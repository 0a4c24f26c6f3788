"""Dialplan/sendmsg applications, eavesdrop, DTMF, sendmsg and sendevent handling.

A mixin of :class:`fsbarge.sim.pbx.Pbx`; split out only to keep modules small. It does not
import the Pbx (no import circle): its methods run on the Pbx that mixes it in, which they use
as a :class:`fsbarge.sim.host.AppsHost`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

import gevent

from .headers import channel_headers
from .host import AppsHost
from .model import EVENT_NAMES, L16, PCMU, Channel, Eavesdrop, Frame, MetaBinding, MetaBindings, new_uuid, switch_true
from .network import SOFIA_DIAL
from .wire import Command, Event

if TYPE_CHECKING:  # the type checker sees what the mixin may use of its host; at run time the Pbx supplies it
    _Host = AppsHost
else:
    _Host = object

# Returned by an application that keeps running (park, eavesdrop, bridge, delayed playback).
RUNNING = None
# Running applications whose loop parses the channel's queued sendmsg (switch_ivr_parse_all_events):
# switch_ivr_park, the bridge's wait, switch_ivr_play_file (src/switch_ivr_play_say.c).
PARSES_EVENTS = ("park", "bridge", "playback")

_BRACKETS = re.compile(r"^\{([^}]*)\}(.*)$")
_USER_DIAL = re.compile(r"user/([^@/]+)(?:@(.*))?")


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    low = name.lower()
    for k, v in headers:
        if k.lower() == low:
            return v
    return None


class AppsMixin(_Host):
    """Applications run on a channel, one frame each; blocking ones stay on ``ch.frames``."""

    # -- the application pump (the session thread's loop) ---------------------------------
    def pump(self, ch: Channel) -> None:
        """Run whatever the channel can run now: queued sendmsg packets, then the dialplan.

        Private events (sendmsg) are parsed only by loops that call switch_ivr_parse_all_events:
        park, bridge, playback and an idle dialplan - not by eavesdrop, so a sendmsg sent during
        eavesdrop runs after eavesdrop returns (FreeSWITCH behaves the same). A sendmsg queued
        behind a playback runs from inside it (a hangup cuts the tone) unless the playback's
        sendmsg had ``event-lock: true``: while an application so started runs, the channel has
        CF_EVENT_LOCK and switch_core_session_dequeue_private_event hands out nothing.
        """
        if ch.busy or not ch.alive or ch.destroyed:
            return
        ch.busy = True
        try:
            while ch.alive and not ch.destroyed:
                top = ch.running_app
                if (ch.private_queue and (top is None or top.app in PARSES_EVENTS)
                        and not any(f.event_lock for f in ch.frames)):
                    self.process_private(ch, ch.private_queue.popleft())
                    continue
                if top is not None:
                    break
                if ch.dialplan:
                    app, data = ch.dialplan.popleft()
                    self.execute(ch, app, data)
                    continue
                if ch.runs_dialplan:
                    # switch_core_standard_on_execute: the extension ran out of actions.
                    self.hangup_channel(ch, "NORMAL_CLEARING")
                break
        finally:
            ch.busy = False

    def execute(self, ch: Channel, app: str, data: str = "",
                private: list[tuple[str, str]] | None = None, app_uuid: str | None = None,
                event_lock: bool = False) -> bool:
        """switch_core_session_execute_application: EXECUTE, run, EXECUTE_COMPLETE."""
        impl = APPLICATIONS.get(app.lower())
        if impl is None:
            # "Invalid Application": nothing is fired for it.
            if private is not None:
                self.fire_private_command(ch, private)
            return False
        frame = Frame(app, data, app_uuid or new_uuid(), private, event_lock)
        ch.set_var("current_application", app)
        ch.set_var("current_application_data", data or None)
        ch.show_app = (app, data)
        self.fire("CHANNEL_EXECUTE", ch, post=self.app_headers(frame))
        ch.frames.append(frame)
        response = impl(self, ch, frame)
        if response is not RUNNING and frame in ch.frames:
            self.complete(ch, frame, response)
        return True

    def complete(self, ch: Channel, frame: Frame, response: str) -> None:
        if frame in ch.frames:
            ch.frames.remove(frame)
        self.fire("CHANNEL_EXECUTE_COMPLETE", ch, post=self.app_headers(frame, response))
        if frame.private is not None:
            self.fire_private_command(ch, frame.private)

    @staticmethod
    def app_headers(frame: Frame, response: str | None = None) -> list[tuple[str, str]]:
        h = [("Application", frame.app)]
        if frame.data:
            h.append(("Application-Data", frame.data))
        if response is not None:
            h.append(("Application-Response", response))
        h.append(("Application-UUID", frame.app_uuid))
        return h

    def fire_private_command(self, ch: Channel, packet: list[tuple[str, str]]) -> None:
        """PRIVATE_COMMAND: the sendmsg packet's own headers first, then the channel's."""
        body = None
        lead = []
        for k, v in packet:
            if k == "\0body":
                body = v
            else:
                lead.append((k, v))
        self.fire("PRIVATE_COMMAND", ch, lead=lead, body=body, with_vars=False)

    # -- sendmsg / sendevent ------------------------------------------------------------------
    def queue_sendmsg(self, cmd: Command) -> tuple[str, Channel | None]:
        """mod_event_socket 'sendmsg': queue a private event; the caller replies, then pumps."""
        uuid = cmd.line[7:].strip() or (cmd.get("session-id") or "")
        ch = self.channels.get(uuid) if uuid else None
        if ch is None or ch.destroyed:
            return f"-ERR invalid session id [{uuid}]", None
        packet = [("Command", cmd.line)] + list(cmd.headers)
        if cmd.body is not None:
            packet.append(("\0body", cmd.body))
        ch.private_queue.append(packet)
        return "+OK", ch

    def process_private(self, ch: Channel, packet: list[tuple[str, str]]) -> None:
        """switch_ivr_parse_event for one sendmsg packet; PRIVATE_COMMAND follows its effect."""
        command = (_first(packet, "call-command") or "").lower()
        if command == "execute":
            app = _first(packet, "execute-app-name")
            arg = _first(packet, "execute-app-arg")
            if arg is None:
                arg = _first(packet, "\0body") or ""
            try:
                loops = max(1, int(_first(packet, "loops") or 1))
            except ValueError:
                loops = 1
            if not app:
                self.fire_private_command(ch, packet)
                return
            event_uuid = _first(packet, "Event-UUID")
            lock = switch_true(_first(packet, "event-lock"))
            for i in range(loops):
                last = i == loops - 1
                self.execute(ch, app, arg, private=packet if last else None, app_uuid=event_uuid, event_lock=lock)
                if not ch.alive:
                    break
        elif command == "hangup":
            cause = (_first(packet, "hangup-cause") or "NORMAL_CLEARING").strip().upper()
            self.hangup_channel(ch, cause, after_mark=lambda: self.fire_private_command(ch, packet))
        else:
            self.fire_private_command(ch, packet)

    def sendevent(self, cmd: Command) -> str:
        """mod_event_socket 'sendevent': to a live Unique-ID it is queued, otherwise fired."""
        event_uuid = new_uuid()
        ename = cmd.line[9:].strip()
        packet = [("Command", cmd.line)] + list(cmd.headers) + [("Event-UUID", event_uuid)]
        target = self.channels.get(cmd.get("unique-id") or "")
        if target is not None and not target.destroyed:
            self.queue_session_event(target, packet)
            return event_uuid
        name = ename.upper() if ename.upper() in EVENT_NAMES else "CLONE"
        subclass = cmd.get("Event-Subclass") if name == "CUSTOM" else None
        self.fire(name, None, lead=packet, body=cmd.body, subclass=subclass)
        return event_uuid

    def queue_session_event(self, ch: Channel, packet: list[tuple[str, str]]) -> None:
        """switch_core_session_queue_event; the running eavesdrop reads 'eavesdrop-command'.

        Park and bridge loops dequeue such events too (and drop them), so a command that arrives
        when no eavesdrop runs has no effect.
        """
        if ch.eavesdrop is not None:
            command = _first(packet, "eavesdrop-command")
            if command:
                self.eavesdrop_command(ch, command, cause="command")
            return
        top = ch.running_app
        if top is not None and top.app not in ("park", "bridge"):
            ch.session_events.append(packet)

    # -- DTMF ------------------------------------------------------------------------------
    def press(self, ch: Channel, digits: str, source: str = "RTP", duration: int | None = None) -> None:
        """Digits arrive from the phone (RTP = RFC2833, ENDPOINT = SIP INFO, APP = uuid_recv_dtmf)."""
        for digit in digits:
            if not ch.alive:
                return
            if source == "ENDPOINT":
                self.fire("RECV_INFO", ch, with_vars=False, body=f"Signal={digit}\r\nDuration=250\r\n",
                          post=[("Content-Type", "application/dtmf-relay")])
            if ch.meta is not None and self.meta_digit(ch, digit):
                continue  # the meta key hook took it: never queued, no DTMF event (capture help-request-answered)
            ed = ch.eavesdrop
            if ed is not None and not ed.dtmf:
                # eavesdrop does not dequeue digits; they are flushed when it returns.
                ed.queued_digits.append(digit)
                continue
            dur = duration if duration is not None else (2080 if source == "RTP" else 2000)
            # switch_channel_dequeue_dtmf fires DTMF without variables.
            self.fire("DTMF", ch, with_vars=False, post=[("DTMF-Digit", digit), ("DTMF-Duration", str(dur)),
                                                         ("DTMF-Source", source)])
            if ed is not None:
                self.eavesdrop_command(ch, digit, cause="dtmf")
                continue
            peer = self.channels.get(ch.peer or "")
            if peer is not None and peer.meta_send is not None and self.meta_digit(peer, digit, sent=True):
                continue  # the bridge sent it to the peer, whose meta hook took it (listen 'b')
            if peer is not None:
                self.delivered.setdefault(peer.uuid, []).append(digit)  # ground truth: the peer's phone got it
            self.digits_to_network(ch, digit, duration)

    def meta_digit(self, ch: Channel, digit: str, sent: bool = False) -> bool:
        """meta_on_dtmf (src/switch_ivr_async.c) for a digit the phone on ``ch`` sends (or, with
        ``sent``, one its peer sends to it): the meta key arms it, the next digit runs its bound app
        (or is dropped if unbound); a second meta key passes through; more than 5 s between the two
        disarms it. True: the digit is swallowed."""
        md = ch.meta_send if sent else ch.meta
        if md is None or not md.keys:
            return False
        now = self.clock()
        if md.meta_on and now - md.last_digit > 5:
            md.meta_on = False
            return False
        md.last_digit = now
        if digit == md.meta_key:
            md.meta_on = not md.meta_on
            return md.meta_on
        if not md.meta_on:
            return False
        md.meta_on = False
        binding = md.keys.get(digit)
        if binding is not None:
            if "1" in binding.respond:
                del md.keys[digit]
            self.run_meta_app(ch, binding, sent)
        return True

    def run_meta_app(self, ch: Channel, binding: MetaBinding, sent: bool = False) -> None:
        """switch_ivr_broadcast of the bound app, on this leg or its peer as meta_on_dtmf decides:
        'o' the other side from the one that pressed, 's' the same side, else 'a' this leg, 'b' the
        peer; inline ('i') it runs at once in the reading thread, otherwise it is queued like a sendmsg."""
        r = binding.respond
        peer = self.channels.get(ch.peer or "")
        if "o" in r:
            on_peer = not sent
        elif "s" in r:
            on_peer = sent
        else:
            on_peer = "b" in r and "a" not in r
        target = peer if on_peer and peer is not None else ch
        if "i" in binding.respond:
            self.execute(target, binding.app, binding.arg)
            return
        target.private_queue.append([("call-command", "execute"), ("execute-app-name", binding.app),
                                     ("execute-app-arg", binding.arg), ("event-lock", "true"),
                                     ("lead-frames", "5")])
        self.pump(target)

    def fire_app_event(self, ch: Channel, data: str) -> None:
        """mod_dptools' ``event`` app: a CHANNEL_APPLICATION event renamed by ``Event-Name=...``,
        with the channel's data. Header order as captured (help-request-answered): Event-Subclass,
        the core headers, Event-Name, the app's other headers, the channel, its variables."""
        name, subclass, extra = "CHANNEL_APPLICATION", None, []
        for item in data.split(","):
            var, sep, val = item.partition("=")
            var, val = var.strip(), val.strip()
            if not sep or not var:
                continue
            if var.lower() == "event-name":
                name = val.upper() if val.upper() in EVENT_NAMES else name
            elif var.lower() == "event-subclass":
                subclass = val
            else:
                extra.append((var, val))
        headers = [("Event-Subclass", subclass)] if subclass else []
        headers += self.factory.core_headers("CHANNEL_APPLICATION")
        headers += [("Event-Name", name), *extra, *channel_headers(ch)]
        headers += [(f"variable_{k}", v) for k, v in ch.variables.items()]
        self.emit(Event(name, headers, None, subclass))

    # -- eavesdrop -------------------------------------------------------------------------
    def start_eavesdrop(self, ch: Channel, frame: Frame, three_way: bool) -> str | None:
        """switch_ivr_eavesdrop_session(): media bug on the target, supervisor's read codec L16."""
        target = self.channels.get(frame.data.strip())
        if target is None or target.destroyed or not target.alive or target is ch:
            return "_none_"  # the session lookup fails silently (capture 04)
        v = ch.variables
        group = v.get("eavesdrop_require_group")
        if group and group not in (target.variables.get("eavesdrop_group") or "").split(","):
            return "_none_"
        if three_way:
            dtmf, mux_read, mux_write, bread, bwrite = False, True, True, True, True
        else:
            dtmf = switch_true(v["eavesdrop_enable_dtmf"]) if "eavesdrop_enable_dtmf" in v else True
            mux_read = switch_true(v.get("eavesdrop_whisper_aleg"))
            mux_write = switch_true(v.get("eavesdrop_whisper_bleg"))
            bread = switch_true(v.get("eavesdrop_bridge_aleg"))
            bwrite = switch_true(v.get("eavesdrop_bridge_bleg"))
            if not (bread or bwrite):
                bread = bwrite = True
        ch.read_codec = L16
        ch.set_var("read_codec", "L16")
        self.fire("CODEC", ch, post=[("channel-read-codec-name", "L16"), ("channel-read-codec-rate", "8000"),
                                     ("channel-read-codec-bit-rate", "128000")])
        self.fire("MEDIA_BUG_START", target, pre=self.bug_headers(target))
        ch.eavesdrop = Eavesdrop(target.uuid, frame, mux_read, mux_write, bread, bwrite, dtmf, target_ch=target)
        # Ground truth for tests (not something FreeSWITCH reports): every mode this session applied.
        self.eavesdrop_log[ch.uuid] = {"target": target.uuid, "modes": [(ch.eavesdrop.mode, "start")], "end": None}
        # SWITCH_MESSAGE_INDICATE_DISPLAY with the target's caller id -> CALL_UPDATE if it changed.
        name, num = target.profile.caller_id_name, target.profile.caller_id_number
        if (ch.sent_callee_name, ch.sent_callee_num) != (name, num):
            ch.sent_callee_name, ch.sent_callee_num = name, num
            v["last_sent_callee_id_name"] = name
            v["last_sent_callee_id_number"] = num
            self.fire("CALL_UPDATE", ch, pre=[("Direction", "SEND"), ("Sent-Callee-ID-Name", name),
                                              ("Sent-Callee-ID-Number", num)])
        pending = list(ch.session_events)
        ch.session_events.clear()
        for packet in pending:
            if ch.eavesdrop is None:
                break
            command = _first(packet, "eavesdrop-command")
            if command:
                self.eavesdrop_command(ch, command, cause="command")
        return RUNNING

    @staticmethod
    def bug_headers(target: Channel) -> list[tuple[str, str]]:
        return [("Media-Bug-Function", "eavesdrop"), ("Media-Bug-Target", target.uuid)]

    def eavesdrop_command(self, ch: Channel, command: str, cause: str = "command") -> None:
        """The eavesdrop loop's switch on each character; '*' ends it, 4/5/6 only touch video."""
        ed = ch.eavesdrop
        for digit in command:
            if ed is None or ch.eavesdrop is not ed:
                return
            if digit == "*":
                self.end_eavesdrop(ch, "star")
                self.pump(ch)
                return
            before = ed.mode
            if digit == "0":
                ed.mux_read, ed.mux_write = False, False
            elif digit == "1":
                ed.mux_read, ed.mux_write = True, False
            elif digit == "2":
                ed.mux_read, ed.mux_write = False, True
            elif digit == "3":
                ed.mux_read, ed.mux_write = True, True
            log = self.eavesdrop_log.get(ch.uuid)
            if log is not None and ed.mode != before:
                log["modes"].append((ed.mode, cause))

    def end_eavesdrop(self, ch: Channel, cause: str = "supervisor_hangup") -> None:
        """Eavesdrop returns: MEDIA_BUG_STOP on the target, then EXECUTE_COMPLETE (captures 02-07)."""
        ed = ch.eavesdrop
        if ed is None:
            return
        ch.eavesdrop = None
        log = self.eavesdrop_log.get(ch.uuid)
        if log is not None and log["end"] is None:
            log["end"] = cause
        target = ed.target_ch or self.channels.get(ed.target)
        if target is not None:
            self.fire("MEDIA_BUG_STOP", target, pre=self.bug_headers(target))
        ch.read_codec = PCMU
        ch.set_var("read_codec", "PCMU")
        self.fire("CODEC", ch, post=[("channel-read-codec-name", "PCMU"), ("channel-read-codec-rate", "8000"),
                                     ("channel-read-codec-bit-rate", "64000")])
        ed.queued_digits.clear()  # switch_core_session_reset flushes unread DTMF
        self.complete(ch, ed.frame, "_none_")

    def stop_eavesdroppers(self, target: Channel) -> None:
        """The eavesdropped channel went down: every supervisor's eavesdrop returns."""
        for sup in list(self.channels.values()):
            if sup.eavesdrop is not None and sup.eavesdrop.target == target.uuid:
                self.end_eavesdrop(sup, "target_hangup")
                self.pump(sup)

    # -- playback ------------------------------------------------------------------------------
    @staticmethod
    def playback_headers(path: str) -> list[tuple[str, str]]:
        ftype = path.split("://", 1)[0] if "://" in path else (path.rsplit(".", 1)[-1] if "." in path else "native")
        return [("Playback-File-Type", ftype), ("Playback-File-Path", path)]

    def finish_playback(self, ch: Channel, frame: Frame, token: object) -> None:
        if ch.playback_token is not token or frame not in ch.frames or not ch.alive:
            return
        ch.playback_token = None
        self.fire("PLAYBACK_STOP", ch, post=self.playback_headers(frame.data) + [("Playback-Status", "done")])
        self.complete(ch, frame, "FILE PLAYED")
        self.pump(ch)


# -- applications: return the Application-Response, or RUNNING while they keep running ---------
def _app_answer(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    if ch.answer_state != "answered":
        pbx.mark_answered(ch)
    return "_none_"


def _app_set(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    name, _, value = frame.data.partition("=")
    if name.strip():
        ch.set_var(name.strip(), value)
    return "_none_"


def _app_export(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    name, _, value = frame.data.partition("=")
    if name.strip():
        ch.set_var(name.strip(), value)
        exported = [x for x in ch.variables.get("export_vars", "").split(",") if x]
        if name.strip() not in exported:
            exported.append(name.strip())
        ch.set_var("export_vars", ",".join(exported))
    return "_none_"


def _app_unset(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    ch.set_var(frame.data.strip(), None)
    return "_none_"


def _app_hangup(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    pbx.hangup_channel(ch, (frame.data.strip() or "NORMAL_CLEARING").upper())
    return RUNNING  # the hang-up unwinds (and completes) this frame itself


def _app_park(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    pbx.fire("CHANNEL_PARK", ch)
    return RUNNING


def _app_playback(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    pbx.fire("PLAYBACK_START", ch, post=pbx.playback_headers(frame.data))
    if pbx.playback_seconds <= 0:
        pbx.fire("PLAYBACK_STOP", ch, post=pbx.playback_headers(frame.data) + [("Playback-Status", "done")])
        return "FILE PLAYED"
    token = object()
    ch.playback_token = token
    gevent.spawn_later(pbx.playback_seconds, pbx.finish_playback, ch, frame, token)
    return RUNNING


def _app_eavesdrop(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    return pbx.start_eavesdrop(ch, frame, three_way=False)


def _app_three_way(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    return pbx.start_eavesdrop(ch, frame, three_way=True)


def _app_bridge(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    data = frame.data.strip()
    params: dict[str, str] = {}
    m = _BRACKETS.match(data)
    if m:
        for item in m[1].split(","):
            k, _, v = item.partition("=")
            params[k.strip()] = v.strip()
        data = m[2].strip()
    m = _USER_DIAL.fullmatch(data)
    if not m:
        sip = SOFIA_DIAL.fullmatch(data)
        if sip:
            return pbx.originate_sip(ch, frame, sip[1], sip[2], sip[3], params)
        return pbx.bridge_failed(ch, frame, "CHANNEL_UNACCEPTABLE")
    return pbx.originate_user(ch, frame, m[1], params.get("origination_uuid"))


def _app_noop(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    return "_none_"


def _app_hash(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    parts = frame.data.split("/", 3)
    if len(parts) >= 3:
        op, realm, key = parts[0].lower(), parts[1], parts[2]
        if op == "insert" and len(parts) == 4:
            pbx.hash.setdefault(realm, {})[key] = parts[3]
        elif op == "delete":
            pbx.hash.get(realm, {}).pop(key, None)
    return "_none_"


def _app_bind_meta_app(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    """``<key> <listen a|b> <respond s|o|a|b, i, 1> <app>[::<args>]`` (mod_dptools dtmf_bind_function):
    listen 'a' takes the digits this leg's phone sends, 'b' those its peer sends to it."""
    parts = frame.data.split(" ", 3)
    if len(parts) != 4 or len(parts[0]) != 1 or parts[0] not in "0123456789*#ABCD":
        return "_none_"
    key, listen, respond, app = parts
    name, sep, arg = app.partition("::")
    if not sep:
        name, arg = "playback", app
    meta_key = (ch.variables.get("bind_meta_key") or "*")[:1]
    if "a" in listen:
        ch.meta = ch.meta or MetaBindings(meta_key=meta_key)
        ch.meta.keys[key] = MetaBinding(listen, respond, name, arg)
    if "b" in listen:
        ch.meta_send = ch.meta_send or MetaBindings(meta_key=meta_key)
        ch.meta_send.keys[key] = MetaBinding(listen, respond, name, arg)
    return "_none_"


def _app_event(pbx: AppsMixin, ch: Channel, frame: Frame) -> str | None:
    pbx.fire_app_event(ch, frame.data)
    return "_none_"


APPLICATIONS: dict[str, Callable[[AppsMixin, Channel, Frame], str | None]] = {
    "answer": _app_answer,
    "pre_answer": _app_noop,
    "set": _app_set,
    "export": _app_export,
    "unset": _app_unset,
    "hangup": _app_hangup,
    "park": _app_park,
    "playback": _app_playback,
    "eavesdrop": _app_eavesdrop,
    "three_way": _app_three_way,
    "bridge": _app_bridge,
    "hash": _app_hash,
    "log": _app_noop,
    "info": _app_noop,
    "sleep": _app_noop,
    "bind_meta_app": _app_bind_meta_app,
    "event": _app_event,
}
