"""Cross-node barge with two real FreeSWITCH PBXs, checked by audio and by the audit record.

Supervisor 1002's phone is registered on pbx1; agent 1000 takes a trunk call on pbx2. The
supervisor dials *33 1000 on pbx1: fsbarge bridges the call to pbx2's external profile with a
single-use token, pbx2's drop-in (freeswitch-conf/dialplan/public/01_fsbarge_node.xml, ACL
"fsbarge_nodes") parks it, and fsbarge runs eavesdrop there on the agent's leg. The keys the
supervisor's phone sends (RFC 2833) cross both PBXs; the recordings show who hears whom.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import FREESWITCH
from .esl import wait_until
from .freeswitch import AGENT, PHONE_TONES, SUP
from .lab import ENDED_SECONDS, ERROR_SECONDS, MODE_KEYS, Call, Lab, supervisor_leg
from .test_tones import TONES, WHOLE
from .test_topologies import CYCLE, TRUNK_CALLER, expected

DID = "5551212"  # the stock public context sends it to extension 1000


@pytest.fixture(scope="module")
def lab2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    assert FREESWITCH is not None
    the_lab = Lab(FREESWITCH, tmp_path_factory.mktemp("realfs-crossnode"), second_node=True)
    try:
        the_lab.start()
        yield the_lab
    finally:
        the_lab.stop()


@pytest.fixture
def lab(lab2: Lab) -> Iterator[Lab]:
    lab2.wait_pbx_idle()
    yield lab2
    lab2.hang_up_everything()


def call_on_pbx2(lab: Lab) -> Call:
    start = lab.mark()
    customer = lab.answered(lab.carrier_call(DID, TRUNK_CALLER, port=lab.external_port2))
    agent = lab.incoming(PHONE_TONES[AGENT], "agent", start)
    call = Call(AGENT, agent, customer, TRUNK_CALLER)
    call.pbx_agent_uuid = lab.pbx_uuid_of(agent, lab.ctl2)
    call.pbx_customer_uuid = lab.pbx_uuid_of(customer, lab.ctl2)
    return call


def cross_record(lab: Lab, what: str, pred) -> dict:
    return wait_until(lambda: next((r for r in lab.audit() if r["node"] == "pbx2" and pred(r)), None),
                      f"the cross-node record to show {what}", 15, interval=0.1)


def test_a_supervisor_on_pbx1_listens_whispers_and_barges_on_an_agent_on_pbx2(lab: Lab) -> None:
    assert lab.pbx2 is not None and lab.ctl is not None
    captures = lab.start_capture(), lab.pbx2.connect(events="ALL", keep_raw=True)
    call = call_on_pbx2(lab)
    sup = lab.answered(supervisor_leg(lab, SUP, "*33", AGENT))
    record = cross_record(lab, "eavesdrop running", lambda r: r["modes"])
    assert (record["target_uuid"], record["supervisor_node"], record["supervisor"]) == (call.pbx_agent_uuid, "pbx1", SUP)
    sup_pbx1 = lab.pbx_uuid_of(sup)
    to_pbx2 = lab.ctl.api(f"uuid_getvar {sup_pbx1} bridge_to").strip()
    snaps = {"pbx1": lab.ctl.api("show channels as json"), "pbx2": lab.ctl2.api("show channels as json")}  # type: ignore[union-attr]
    legs = [call.agent, call.customer, sup]
    lab.assert_hearing(legs, expected("listen"), "across nodes, listen")
    for n, mode in enumerate(CYCLE, start=2):
        lab.press(sup, MODE_KEYS[mode])
        cross_record(lab, f"mode {mode}", lambda r, n=n: len(r["modes"]) >= n)
        lab.assert_hearing(legs, expected(mode), f"across nodes, {mode}")
    lab.hangup(sup)
    record = cross_record(lab, "the intervention closed", lambda r: r["outcome"] != "active")
    assert [(m["mode"], m["source"]) for m in record["modes"]] == [("listen", "feature_code")] + [(m, "dtmf") for m in CYCLE]
    assert (record["outcome"], record["end_reason"], record["customer"]) == ("completed", "supervisor_hangup", TRUNK_CALLER)
    assert len([r for r in lab.audit() if r["agent"] == AGENT and r["started_at"] >= record["started_at"]]) == 1
    lab.hang_up_everything()
    lab.save_capture("cross-node-supervisor-node", captures[0], {sup_pbx1: "supervisor", to_pbx2: "supervisor_to_node"},
                     {"eavesdropping": snaps["pbx1"]})
    lab.save_capture("cross-node-agent-node", captures[1], {call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer",
                                                             record["supervisor_uuid"]: "supervisor_from_node"},
                     {"eavesdropping": snaps["pbx2"]})


def test_the_agents_call_ending_on_pbx2_ends_the_supervisors_call_on_pbx1(lab: Lab) -> None:
    call = call_on_pbx2(lab)
    sup = lab.answered(supervisor_leg(lab, SUP, "*34", AGENT))
    sup_pbx1 = lab.pbx_uuid_of(sup)
    cross_record(lab, "whisper running", lambda r: r["modes"] and r["outcome"] == "active")
    lab.hangup(call.customer)
    record = cross_record(lab, "closed at the call's end", lambda r: r["outcome"] == "completed")
    assert record["end_reason"] == "call_ended"
    assert lab.ctl is not None
    wait_until(lambda: lab.ctl.api(f"uuid_exists {sup_pbx1}").strip() == "false",  # type: ignore[union-attr]
               "the supervisor's call on pbx1 to end")
    # pbx2 played the end tone to its leg from pbx1 before hanging it up: it crossed to the phone
    lab.ended(sup)
    got = lab.heard_seconds(sup, TONES)
    assert got["ended"] >= WHOLE * ENDED_SECONDS and got["error"] == 0, got


def test_a_call_to_pbx2_with_a_token_fsbarge_never_issued_is_refused(lab: Lab) -> None:
    start = lab.mark()
    forged = lab.carrier_call("fsbarge-" + "0" * 32, "5550009999", port=lab.external_port2)
    lab.answered(forged, start)  # the drop-in answers and parks anything from an admitted address
    record = cross_record(lab, "the forged call refused", lambda r: r["reason"] == "unauthenticated")
    assert (record["outcome"], record["supervisor"], record["modes"]) == ("denied", None, [])
    lab.wait_pbx_idle()  # pbx2 hangs the forged call up ...
    lab.ended(forged, start)
    got = lab.heard_seconds(forged, TONES)  # ... after the whole error tone
    assert got["error"] >= WHOLE * ERROR_SECONDS and got["ended"] == 0, got
