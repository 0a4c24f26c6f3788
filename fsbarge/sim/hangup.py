"""Hang-up sequences: who fires what, in which order, when a leg of a call goes down.

FreeSWITCH's order partly depends on thread timing; where two captures disagree, the comments
name the capture copied. A mixin of :class:`fsbarge.sim.pbx.Pbx`, using it as a
:class:`fsbarge.sim.host.HangupHost`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from .host import HangupHost
from .model import CAUSES, Channel, switch_true

if TYPE_CHECKING:  # the type checker sees what the mixin may use of its host; at run time the Pbx supplies it
    _Host = HangupHost
else:
    _Host = object


class HangupMixin(_Host):
    """Channel teardown: CHANNEL_HANGUP, unwinding the running apps, the CS_HANGUP..CS_DESTROY tail."""

    def hangup_channel(self, ch: Channel, cause: str = "NORMAL_CLEARING",
                       after_mark: Callable[[], None] | None = None, remote: bool = False) -> None:
        """Hang a channel up (phone BYE, uuid_kill, sendmsg hangup, hangup app, no route ...)."""
        if not ch.alive or ch.destroyed:
            return
        peer = self.channels.get(ch.peer) if ch.peer else None
        if peer is not None and peer.alive:
            self._hangup_bridged(ch, peer, cause, after_mark, remote)
            return
        ringing = self.channels.get(ch.ringing_peer) if ch.ringing_peer else None
        self._mark_hangup(ch, cause, remote)
        if after_mark:
            after_mark()
        if ringing is not None and ringing.alive:
            # The caller gave up while the agent's phone rang: cancel the outbound leg.
            self._mark_hangup(ringing, "ORIGINATOR_CANCEL", False)
            self._tail(ringing)
        if ch.direction == "outbound":
            origin = self.channels.get(ch.variables.get("originator", ""))
            if origin is not None and origin.ringing_peer == ch.uuid and origin.alive:
                # The agent's phone rejected the call: the bridge fails with that cause.
                origin.ringing_peer = None
                self._tail(ch)
                frame = origin.frame_named("bridge")
                if frame is not None:
                    self.bridge_failed(origin, frame, cause)
                return
        self.stop_eavesdroppers(ch)
        self._unwind(ch)
        self._tail(ch)

    def _hangup_bridged(self, ch: Channel, peer: Channel, cause: str,
                        after_mark: Callable[[], None] | None, remote: bool) -> None:
        a, b = (ch, peer) if ch.originator else (peer, ch)
        if ch is a:
            # Capture 03: the customer (A, runs 'bridge') hangs up first.
            self._mark_hangup(a, cause, remote)
            if after_mark:
                after_mark()
            self._mark_hangup(b, cause, False)
            self._unwind(b)  # apps sendmsg'd to the agent leg (rare) return first
            self._t_hangup(b)
            self.stop_eavesdroppers(b)
            self.stop_eavesdroppers(a)
            self._t_report(b)
            if b.to_node:
                # a call to another node (capture cross-node-supervisor-node): its leg completes
                # its hang-up before the caller's bridge unwinds
                self._t_complete(b)
                self._unbridge(a, b)
            else:
                self._unbridge(a, b)
                self._t_complete(b)
            self._unwind(a)
            self._t_hangup(a)
            self._t_destroy(b)
            self._t_report(a)
            self._t_complete(a)
            self._t_destroy(a)
            return
        # Capture 05 (2): the agent (B) hangs up first; A ends by hangup_after_bridge.
        self._mark_hangup(b, cause, remote)
        if after_mark:
            after_mark()
        self._unwind(b)
        self._t_hangup(b)
        self._t_report(b)
        self._t_complete(b)
        self._unbridge(a, b)
        end_a = switch_true(a.variables.get("hangup_after_bridge"))
        if end_a:
            self._mark_hangup(a, cause, False)
        frame = a.frame_named("bridge")
        if frame is not None:
            self.complete(a, frame, "_none_")
        self.stop_eavesdroppers(b)
        if not end_a:
            self._t_destroy(b)
            self.pump(a)
            return
        self.stop_eavesdroppers(a)
        self._unwind(a)
        self._t_hangup(a)
        self._t_destroy(b)
        self._t_report(a)
        self._t_complete(a)
        self._t_destroy(a)

    def _unbridge(self, a: Channel, b: Channel) -> None:
        """CHANNEL_UNBRIDGE on the A-leg; the B-leg's call uuid reverts to its own (capture 03/05)."""
        self.fire("CHANNEL_UNBRIDGE", a, pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        for leg in (a, b):
            leg.variables.pop("bridge_to", None)
            leg.peer = None
        b.call_uuid = b.uuid
        b.variables["call_uuid"] = b.uuid

    def _mark_hangup(self, ch: Channel, cause: str, remote: bool) -> None:
        """switch_channel_perform_hangup: CHANNEL_HANGUP while the running state is unchanged."""
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.state_number = 10
        q850 = CAUSES.get(cause, 0)
        if remote:
            ch.variables.update({"sip_term_status": "200", "proto_specific_hangup_cause": "sip:200",
                                 "sip_term_cause": str(q850)})
        ch.variables["sip_reason"] = f'Q.850;cause={q850};text="{cause}"'
        ch.variables["sip_hangup_disposition"] = "recv_bye" if remote else "send_bye"
        self.fire("CHANNEL_HANGUP", ch)
        self.send_bye(ch.uuid, cause)  # a call with another simulated node (network.py)
        # an originate whose leg never answered fails with this cause (capture help-request-unanswered:
        # its BACKGROUND_JOB comes right after CHANNEL_HANGUP)
        self.originate_failed(ch, cause)

    def _unwind(self, ch: Channel) -> None:
        """Running applications return because the channel is down, innermost first."""
        ch.private_queue.clear()
        ch.dialplan.clear()
        ch.session_events.clear()
        while ch.frames:
            frame = ch.frames[-1]
            if frame.app in ("eavesdrop", "three_way") and ch.eavesdrop is not None:
                self.end_eavesdrop(ch)
            elif frame.app == "park":
                self.fire("CHANNEL_UNPARK", ch)
                self.complete(ch, frame, "_none_")
            elif frame.app == "playback":
                ch.playback_token = None
                self.fire("PLAYBACK_STOP", ch, post=self.playback_headers(frame.data) + [("Playback-Status", "break")])
                self.complete(ch, frame, "PLAYBACK ERROR")
            else:
                self.complete(ch, frame, "_none_")

    def _tail(self, ch: Channel) -> None:
        self._t_hangup(ch)
        self._t_report(ch)
        self._t_complete(ch)
        self._t_destroy(ch)

    def _t_hangup(self, ch: Channel) -> None:
        self.set_state(ch, "CS_HANGUP", 10)
        ch.profile.hangup = self.now_us()  # Caller-Channel-Hangup-Time shows from CALLSTATE HANGUP on
        self.set_callstate(ch, "HANGUP")

    def _t_report(self, ch: Channel) -> None:
        ch.state_number = 11
        self.presence_in(ch, "CS_HANGUP", "idle")
        self.set_state(ch, "CS_REPORTING", 11)

    def _t_complete(self, ch: Channel) -> None:
        """CHANNEL_HANGUP_COMPLETE with the CDR variables (Hangup-Cause is printed twice)."""
        self._cdr_vars(ch)
        self.fire("CHANNEL_HANGUP_COMPLETE", ch, pre=[("Hangup-Cause", ch.hangup_cause or "NORMAL_CLEARING")])

    def _t_destroy(self, ch: Channel) -> None:
        ch.state_number = 12
        self.fire("CHANNEL_DESTROY", ch)
        self.set_state(ch, "CS_DESTROY", 12)
        ch.destroyed = True
        self.channels.pop(ch.uuid, None)

    def _cdr_vars(self, ch: Channel) -> None:
        cause = ch.hangup_cause or "NORMAL_CLEARING"
        end = self.clock()
        start = ch.created
        answered = ch.answered_at
        fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))  # noqa: E731
        v = ch.variables
        v["hangup_cause"] = cause
        v["hangup_cause_q850"] = str(CAUSES.get(cause, 0))
        v["digits_dialed"] = "none"
        v["start_stamp"] = fmt(start)
        v["profile_start_stamp"] = fmt(start)
        if answered is not None:
            v["answer_stamp"] = fmt(answered)
        v["end_stamp"] = fmt(end)
        v["start_epoch"] = str(int(start))
        v["start_uepoch"] = str(int(start * 1_000_000))
        v["answer_epoch"] = str(int(answered)) if answered else "0"
        v["answer_uepoch"] = str(int(answered * 1_000_000)) if answered else "0"
        v["end_epoch"] = str(int(end))
        v["end_uepoch"] = str(int(end * 1_000_000))
        if ch.frames or "current_application" in v:
            v["last_app"] = v.get("current_application", "")
            if v.get("current_application_data"):
                v["last_arg"] = v["current_application_data"]
        v["caller_id"] = f'"{ch.profile.caller_id_name}" <{ch.profile.caller_id_number}>'
        v["duration"] = str(int(end - start))
        v["billsec"] = str(int(end - answered)) if answered else "0"
        v["mduration"] = str(int((end - start) * 1000))
        v["billmsec"] = str(int((end - answered) * 1000)) if answered else "0"
        v["uduration"] = str(int((end - start) * 1_000_000))
        if ch.peer or ch.bridged_call_uuid:
            v["bridge_hangup_cause"] = cause
