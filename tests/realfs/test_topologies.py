"""Every call topology a contact centre uses, against a real FreeSWITCH, checked by audio and audit.

Each test sets up one topology between real SIP endpoints, sends supervisor 1002 in with *33 (listen)
and walks the keys 2 (whisper), 3 (barge), 1 (customer only), 0 (listen) on the supervisor's phone
(RFC 2833). After every change the recordings of what each endpoint receives show who hears the
supervisor's tone; then the audit record must name the agent's own leg and the other party.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from .freeswitch import AGENT, AGENT2, AGENT3, CUSTOMER2_TONE, PHONE_TONES, SUP, SUP2, SUP3
from .esl import Esl, wait_until
from .lab import HEARS_SUPERVISOR, MODE_KEYS, Call, Lab, Leg, supervisor_leg

TRUNK_CALLER, TRUNK_CALLER2, OUTBOUND_NUMBER = "5550001111", "5550003333", "5550002222"
CYCLE = ("whisper", "barge", "customer_whisper", "listen")


def expected(mode: str, sup_role: str = "supervisor") -> dict[str, set[str]]:
    hears = HEARS_SUPERVISOR[mode]
    return {
        "agent": {"customer"} | ({sup_role} if "agent" in hears else set()),
        "customer": {"agent"} | ({sup_role} if "customer" in hears else set()),
        sup_role: {"agent", "customer"},
    }


def trunk_call_to(lab: Lab, did: str, ext: str, caller: str = TRUNK_CALLER, tone: int | None = None) -> Call:
    """A customer calls a DID over the SIP trunk; the public context sends it to extension ``ext``."""
    start = lab.mark()
    customer = lab.answered(lab.carrier_call(did, caller, **({"tone": tone} if tone else {})))
    agent = lab.incoming(PHONE_TONES[ext], "agent", start)
    return Call(ext, agent, customer, caller)


def resolve(lab: Lab, call: Call) -> Call:
    call.pbx_agent_uuid = lab.pbx_uuid_of(call.agent)
    call.pbx_customer_uuid = lab.pbx_uuid_of(call.customer)
    return call


def barge_and_cycle(lab: Lab, call: Call, name: str, snapshots: dict[str, str],
                    extra_legs: list[Leg] = (), extra_expected: dict[str, set[str]] | None = None) -> dict:
    """Supervisor 1002 dials *33<agent>, walks 2, 3, 1, 0, hangs up; returns the closed audit record."""
    sup = lab.answered(supervisor_leg(lab, SUP, "*33", call.agent_ext))
    sup_pbx = lab.pbx_uuid_of(sup)
    record = lab.wait_record(sup_pbx, "eavesdrop running", lambda r: r["modes"])
    assert record["target_uuid"] == call.pbx_agent_uuid, (
        f"{name}: eavesdropping {record['target_uuid']}, not the agent's own leg {call.pbx_agent_uuid}")
    legs = [call.agent, call.customer, sup, *extra_legs]
    snapshots["eavesdropping"] = lab.ctl.api("show channels as json")
    lab.assert_hearing(legs, {**expected("listen"), **(extra_expected or {})}, f"{name}, listen")
    for n, mode in enumerate(CYCLE, start=2):
        lab.press(sup, MODE_KEYS[mode])
        lab.wait_record(sup_pbx, f"mode {mode}", lambda r, n=n: len(r["modes"]) >= n)
        lab.assert_hearing(legs, {**expected(mode), **(extra_expected or {})}, f"{name}, {mode}")
    lab.hangup(sup)
    record = lab.wait_record(sup_pbx, "the intervention closed", lambda r: r["outcome"] != "active")
    assert [m["mode"] for m in record["modes"]] == ["listen", *CYCLE], record["modes"]
    assert [m["source"] for m in record["modes"]] == ["feature_code"] + ["dtmf"] * 4
    assert (record["outcome"], record["end_reason"]) == ("completed", "supervisor_hangup"), record
    assert record["supervisor"] == SUP and record["agent"] == call.agent_ext
    assert record["target_uuid"] == call.pbx_agent_uuid, (
        f"{name}: eavesdropped {record['target_uuid']}, the agent's own leg is {call.pbx_agent_uuid}")
    assert record["customer"] == call.customer_number, f"{name}: customer {record['customer']!r}"
    return record


@dataclass
class Recorder:
    """A raw `event plain ALL` capture of the PBX during one topology, who is who, and snapshots."""

    capture: Esl
    roles: dict[str, str] = field(default_factory=dict)
    snaps: dict[str, str] = field(default_factory=dict)

    def supervisor(self, record: dict) -> None:
        self.roles[record["supervisor_uuid"]] = "supervisor"


def test_trunk_customer_calls_a_did_routed_to_the_agent(lab: Lab, rec: Recorder) -> None:
    """SIP trunk (unauthenticated external profile), public context DID 5551212 -> agent 1000."""
    call = resolve(lab, trunk_call_to(lab, "5551212", AGENT))
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer"})
    rec.supervisor(barge_and_cycle(lab, call, "trunk", rec.snaps))


def test_agent_dials_out_through_the_carrier_gateway(lab: Lab, rec: Recorder) -> None:
    """Agent 1000 dials 9<number>; the PBX bridges it out through the gateway 'carrier'."""
    start = lab.mark()
    agent = lab.answered(lab.phone_call(AGENT, f"9{OUTBOUND_NUMBER}", "agent"))
    customer = lab.incoming(850, "customer", start)
    call = resolve(lab, Call(AGENT, agent, customer, OUTBOUND_NUMBER))
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer"})
    rec.supervisor(barge_and_cycle(lab, call, "outbound", rec.snaps))


def test_blind_transfer_to_the_agent(lab: Lab, rec: Recorder) -> None:
    """A trunk call answered by agent 1004 is blind-transferred (uuid_transfer) to agent 1000."""
    first = trunk_call_to(lab, "5551214", AGENT2)
    pbx_customer = lab.pbx_uuid_of(first.customer)
    start = lab.mark()
    lab.ctl.api(f"uuid_transfer {pbx_customer} {AGENT} XML default")
    agent = lab.incoming(PHONE_TONES[AGENT], "agent", start)
    call = resolve(lab, Call(AGENT, agent, first.customer, TRUNK_CALLER))
    assert call.pbx_customer_uuid == pbx_customer
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer"})
    rec.supervisor(barge_and_cycle(lab, call, "blind transfer", rec.snaps))


def test_attended_transfer_to_the_agent(lab: Lab, rec: Recorder) -> None:
    """Agent 1004 consults agent 1000 with att_xfer (the stock *4 feature), then hangs up: the customer
    is connected to 1000."""
    first = trunk_call_to(lab, "5551214", AGENT2)
    pbx_first_agent = lab.pbx_uuid_of(first.agent)
    start = lab.mark()
    lab.ctl.api(f"uuid_broadcast {pbx_first_agent} att_xfer::user/{AGENT}@127.0.0.1 aleg")
    agent = lab.incoming(PHONE_TONES[AGENT], "agent", start)
    lab.hangup(first.agent)  # the transferring agent hangs up after consulting: transfer completes
    call = resolve(lab, Call(AGENT, agent, first.customer, TRUNK_CALLER))
    # the transfer is complete once att_xfer has bridged the customer to 1000 (uuid_bridge): a barge
    # before that would find the agent still talking to 1004
    wait_until(lambda: lab.ctl.api(f"uuid_getvar {call.pbx_customer_uuid} bridge_to", check=False).strip()
               == call.pbx_agent_uuid, "att_xfer to bridge the customer to the agent")
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer"})
    rec.supervisor(barge_and_cycle(lab, call, "attended transfer", rec.snaps))


def test_callcenter_queue_delivers_to_the_agent(lab: Lab, rec: Recorder) -> None:
    """DID 5551215 -> mod_callcenter queue sales@default -> agent 1000@default (contact user/1000)."""
    call = resolve(lab, trunk_call_to(lab, "5551215", AGENT))
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer"})
    rec.supervisor(barge_and_cycle(lab, call, "callcenter", rec.snaps))


def test_agent_with_a_call_on_hold_barge_joins_the_active_call(lab: Lab, rec: Recorder) -> None:
    """Agent 1000 holds call 1, takes call 2, then holds call 2 and resumes call 1: the barge joins call 1,
    and the held customer never hears the supervisor."""
    talking = {"agent": {"customer"}, "customer": {"agent"}}
    call = trunk_call_to(lab, "5551212", AGENT)
    lab.assert_hearing([call.agent, call.customer], talking, "hold, call 1 before hold")
    lab.hold(call.agent)
    second = trunk_call_to(lab, "5551212", AGENT, TRUNK_CALLER2, CUSTOMER2_TONE)
    lab.assert_hearing([second.agent, second.customer], talking, "hold, call 2 before hold")
    lab.hold(second.agent)
    lab.hold(call.agent, on=False)
    resolve(lab, call)
    held = Leg(second.customer.uuid, "held_customer", second.customer.tone, second.customer.recording)
    pbx_held_agent = lab.pbx_uuid_of(second.agent)
    rec.supervisor(barge_and_cycle(lab, call, "hold", rec.snaps, extra_legs=[held], extra_expected={"held_customer": set()}))
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer", pbx_held_agent: "agent_held_leg",
            lab.pbx_uuid_of(second.customer): "held_customer"})


def test_two_supervisors_listen_and_whisper_side_by_side(lab: Lab, rec: Recorder) -> None:
    """1002 listens while 1005 whispers to the same agent; each is audited and leaves independently."""
    call = resolve(lab, trunk_call_to(lab, "5551212", AGENT))
    s1 = lab.answered(supervisor_leg(lab, SUP, "*33", AGENT))
    s1_pbx = lab.pbx_uuid_of(s1)
    lab.wait_record(s1_pbx, "eavesdrop running", lambda r: r["modes"])
    s2 = lab.answered(supervisor_leg(lab, SUP2, "*34", AGENT))
    s2_pbx = lab.pbx_uuid_of(s2)
    lab.wait_record(s2_pbx, "eavesdrop running", lambda r: r["modes"])
    rec.snaps["two_eavesdroppers"] = lab.ctl.api("show channels as json")
    s1.role, s2.role = "supervisor", "supervisor2"
    legs = [call.agent, call.customer, s1, s2]
    both = {"supervisor": {"agent", "customer"}, "supervisor2": {"agent", "customer"}}
    maybe = {"supervisor": {"supervisor2"}, "supervisor2": {"supervisor"}}  # eavesdroppers may hear each other
    lab.assert_hearing(legs, {"agent": {"customer", "supervisor2"}, "customer": {"agent"}, **both},
                       "two supervisors, 1002 listen + 1005 whisper", maybe)
    lab.press(s2, "*")  # 1005 leaves; 1002 stays
    r2 = lab.wait_record(s2_pbx, "1005 gone", lambda r: r["outcome"] != "active")
    assert (r2["outcome"], r2["end_reason"], r2["supervisor"]) == ("completed", "supervisor_left", SUP2)
    assert lab.record_of(s1_pbx)["outcome"] == "active"
    lab.press(s1, "3")
    lab.wait_record(s1_pbx, "1002 barging", lambda r: len(r["modes"]) >= 2)
    lab.assert_hearing([call.agent, call.customer, s1],
                       {"agent": {"customer", "supervisor"}, "customer": {"agent", "supervisor"},
                        "supervisor": {"agent", "customer"}}, "1002 barges after 1005 left")
    lab.hangup(s1)
    r1 = lab.wait_record(s1_pbx, "1002 closed", lambda r: r["outcome"] != "active")
    for r in (r1, r2):
        assert r["target_uuid"] == call.pbx_agent_uuid and r["customer"] == TRUNK_CALLER, r
    assert [m["mode"] for m in r1["modes"]] == ["listen", "barge"]
    assert [m["mode"] for m in r2["modes"]] == ["whisper"]
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer",
                                             s1_pbx: "supervisor", s2_pbx: "supervisor2"})


def test_a_key_for_a_mode_the_team_disallows_is_undone(lab: Lab, rec: Recorder) -> None:
    """Team support allows listen and whisper: 1012's keys 3 and 1 are undone at once, nobody hears
    the supervisor meanwhile, and the history keeps them as refused."""
    call = resolve(lab, trunk_call_to(lab, "5551210", AGENT3))
    sup = lab.answered(supervisor_leg(lab, SUP3, "*33", AGENT3))
    sup_pbx = lab.pbx_uuid_of(sup)
    lab.wait_record(sup_pbx, "eavesdrop running", lambda r: r["modes"])
    rec.snaps["eavesdropping"] = lab.ctl.api("show channels as json")
    legs = [call.agent, call.customer, sup]
    lab.assert_hearing(legs, expected("listen"), "refused, listen")
    steps = (("3", "barge", "listen"), ("2", "whisper", "whisper"), ("1", "customer_whisper", "whisper"),
             ("0", "listen", "listen"))
    for n, (key, asked, now_in) in enumerate(steps, start=2):
        lab.press(sup, key)
        lab.wait_record(sup_pbx, f"key {key}", lambda r, n=n: len(r["modes"]) >= n)
        lab.assert_hearing(legs, expected(now_in), f"refused, key {key} ({asked}) -> {now_in}")
    lab.hangup(sup)
    record = lab.wait_record(sup_pbx, "closed", lambda r: r["outcome"] != "active")
    assert [(m["mode"], bool(m.get("refused"))) for m in record["modes"]] == [
        ("listen", False), ("barge", True), ("whisper", False), ("customer_whisper", True), ("listen", False)]
    assert record["target_uuid"] == call.pbx_agent_uuid and record["customer"] == TRUNK_CALLER
    assert (record["outcome"], record["end_reason"]) == ("completed", "supervisor_hangup")
    rec.roles.update({call.pbx_agent_uuid: "agent", call.pbx_customer_uuid: "customer",
                                         sup_pbx: "supervisor"})


CAPTURES = {
    "test_trunk_customer_calls_a_did_routed_to_the_agent": "trunk-did-to-agent",
    "test_agent_dials_out_through_the_carrier_gateway": "agent-outbound-gateway",
    "test_blind_transfer_to_the_agent": "blind-transfer-to-agent",
    "test_attended_transfer_to_the_agent": "attended-transfer-to-agent",
    "test_callcenter_queue_delivers_to_the_agent": "callcenter-queue-to-agent",
    "test_agent_with_a_call_on_hold_barge_joins_the_active_call": "agent-with-call-on-hold",
    "test_two_supervisors_listen_and_whisper_side_by_side": "two-supervisors",
    "test_a_key_for_a_mode_the_team_disallows_is_undone": "refused-key",
}


@pytest.fixture
def rec(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Each topology starts and ends with an idle PBX; its capture is kept if FSBARGE_REALFS_CAPTURES is set."""
    lab.wait_pbx_idle()
    recorder = Recorder(lab.start_capture())
    yield recorder
    lab.hang_up_everything()
    lab.save_capture(CAPTURES[request.node.name], recorder.capture, recorder.roles, recorder.snaps)
