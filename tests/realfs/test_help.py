"""Help requests on a real FreeSWITCH, by audio: the agent's *9 rings the supervisor's phone, the
supervisor who answers whispers to the agent only, and the request and its intervention are
recorded and linked; a request nobody answers ends after [help] ring_seconds. The agent hears the
help_answered tone in the first case and the help_unanswered tone in the second, never the other.

Agent 1010 (team "support": supervisor 1012 only, whisper allowed) takes a trunk call; the agent's
phone sends *9 as RFC 2833 (the meta key FreeSWITCH binds on the agent's leg); the supervisor's
phone answers into its own tone, or, with the lab's phones told not to answer, only rings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.e2e import WAIT

from .audio import heard
from .esl import Esl, EslError, wait_until
from .freeswitch import AGENT2, AGENT3, PHONE_TONES, SUP, SUP3
from .lab import HELP_ANSWERED_HZ, HELP_RING_SECONDS, HELP_UNANSWERED_HZ, ROOT, Call, Lab
from .test_topologies import resolve, trunk_call_to

HELP_TONES = {"help_answered": HELP_ANSWERED_HZ, "help_unanswered": HELP_UNANSWERED_HZ}


@pytest.fixture
def idle(lab: Lab) -> Iterator[Lab]:
    lab.wait_pbx_idle()
    yield lab
    lab.hang_up_everything()


def help_requests(lab: Lab) -> list[dict]:
    env = dict(os.environ, FSBARGE_ESL_PASSWORD=lab.pbx.esl_password)
    proc = subprocess.run([sys.executable, "-m", "fsbarge", "help", "list", "--format", "json", "--config", str(lab.config)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def agent_hears(lab: Lab, call: Call, context: str) -> set[str]:
    """Which help tone (and whether the customer) the agent hears in the next listening window."""
    window = lab.listen_window([call.agent])
    return heard(window["agent"], {"customer": call.customer.tone, **HELP_TONES}, f"{context}: agent")


def bound_call(lab: Lab, capture: Esl) -> Call:
    """A trunk customer talks to agent 1010; fsbarge has bound *9 for the agent on the customer's
    leg, listening to the digits the agent sends (where the stock dialplan binds the callee's *1..*4)."""
    call = resolve(lab, trunk_call_to(lab, "5551210", AGENT3, caller="5550004444"))
    capture.wait_event(lambda e: e.name == "CHANNEL_EXECUTE" and e.get("Application") == "bind_meta_app"
                       and e.get("Unique-ID") == call.pbx_customer_uuid
                       and (e.get("Application-Data") or "").startswith("9 b s"), "*9 bound for the agent")
    return call


def test_star_9_rings_the_supervisor_who_answers_and_whispers_to_the_agent_only(idle: Lab) -> None:
    lab = idle
    capture = lab.start_capture()
    call = bound_call(lab, capture)
    start = lab.mark()
    lab.press(call.agent, "*9")
    sup = lab.incoming(PHONE_TONES[SUP3], "supervisor", start)
    assert agent_hears(lab, call, "help answered") == {"customer", "help_answered"}
    sup_pbx = lab.pbx_uuid_of(sup)
    record = lab.wait_record(sup_pbx, "the whisper running", lambda r: r["modes"])
    assert (record["origin"], record["requested_mode"], record["supervisor"]) == ("help_request", "whisper", SUP3)
    assert record["modes"][0]["source"] == "help_request" and record["target_uuid"] == call.pbx_agent_uuid
    lab.assert_hearing([call.agent, call.customer, sup], {
        "agent": {"customer", "supervisor"}, "customer": {"agent"}, "supervisor": {"agent", "customer"},
    }, "help request answered: whisper")
    [req] = wait_until(lambda: [r for r in help_requests(lab) if r["outcome"] == "answered"] or None,
                       "the help request recorded as answered")
    assert (req["agent"], req["agent_uuid"], req["answered_by"], req["source"]) == (AGENT3, call.pbx_agent_uuid, SUP3, "phone")
    assert req["intervention_id"] == record["id"] and record["help_request_id"] == req["id"]
    assert req["customer"] == "5550004444"
    lab.hang_up_everything()
    lab.save_capture("help-request-answered", capture,
                     {call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer", sup_pbx: "supervisor"}, {})


def test_star_9_nobody_answers_the_request_ends_after_ring_seconds_with_the_other_tone(idle: Lab) -> None:
    lab = idle
    capture = lab.start_capture()
    call = bound_call(lab, capture)
    lab.phones_answer(False)
    try:
        start = lab.mark()
        lab.press(call.agent, "*9")
        asked = time.monotonic()
        # the supervisor's phone rings, showing who asks ...
        rung = lab.ph.wait_event(lambda e: e.name == "CHANNEL_CREATE" and e.get("Call-Direction") == "inbound"
                                 and e.get("Caller-Destination-Number") == f"speak-{PHONE_TONES[SUP3]}",
                                 "the supervisor's phone to ring", start=start)
        assert (rung.get("Caller-Caller-ID-Name"), rung.get("Caller-Caller-ID-Number")) == (f"Help {AGENT3}", AGENT3)
        # ... and stops after ring_seconds, never answered
        lab.ph.wait_event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.get("Unique-ID") == rung["Unique-ID"],
                          "the supervisor's phone to stop ringing", start=start, timeout=HELP_RING_SECONDS + WAIT)
        rang_for = time.monotonic() - asked
        heard_now = agent_hears(lab, call, "help unanswered")
    finally:
        lab.phones_answer(True)
    assert HELP_RING_SECONDS - 1 <= rang_for <= HELP_RING_SECONDS + 3, rang_for
    assert not [e for e in lab.ph.events[start:] if e.name == "CHANNEL_ANSWER" and e.get("Unique-ID") == rung["Unique-ID"]]
    assert heard_now == {"customer", "help_unanswered"}
    [req] = wait_until(lambda: [r for r in help_requests(lab) if r["agent_uuid"] == call.pbx_agent_uuid
                                and r["outcome"] is not None] or None, "the help request recorded as ended")
    assert (req["outcome"], req["answered_by"], req["intervention_id"], req["source"]) == ("unanswered", None, None, "phone")
    assert req["customer"] == "5550004444"
    assert not [r for r in lab.audit() if r.get("help_request_id") == req["id"]]  # nobody intervened
    sup_legs = sorted({e["Unique-ID"] for e in capture.events if e.name == "CHANNEL_ORIGINATE"
                       and e.get("variable_fsbarge_help")})
    lab.hang_up_everything()
    lab.save_capture("help-request-unanswered", capture,
                     {call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer",
                      **{u: "supervisor" for u in sup_legs}}, {})


def test_an_agent_with_star_9_keeps_the_stock_star_keys(idle: Lab) -> None:
    """The stock dialplan binds *1..*4 on the caller's leg for the callee's keys; fsbarge binds *9 in
    the same place, so an agent's *1 still opens the stock transfer prompt, as a non-agent's does.
    (Bound on the agent's own leg instead, its meta hook would take '*1' and drop it.)"""
    lab = idle
    capture = lab.start_capture()
    try:
        def transfer_menu(start: int) -> bool:
            try:
                capture.wait_event(lambda e: e.name == "CHANNEL_EXECUTE" and e.get("Application") == "execute_extension"
                                   and (e.get("Application-Data") or "").startswith("dx "), "*1", start=start)
            except EslError:  # not within WAIT
                return False
            return True

        # not an agent: agent 1004 calls supervisor 1002, who presses *1: the stock transfer prompt runs
        start = lab.mark()
        lab.answered(lab.phone_call(AGENT2, SUP, "caller"))
        callee = lab.incoming(PHONE_TONES[SUP], "callee", start)
        mark = len(capture.events)
        lab.press(callee, "*1")
        assert transfer_menu(mark)
        lab.hang_up_everything()
        # an agent with *9 bound presses *1: the same prompt
        call = bound_call(lab, capture)
        mark = len(capture.events)
        lab.press(call.agent, "*1")
        assert transfer_menu(mark)
    finally:
        capture.close()
