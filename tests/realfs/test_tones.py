"""The tones fsbarge plays before it hangs a supervisor up, heard on a real FreeSWITCH.

A refused feature code plays ``[tones] error`` and hangs up; a supervisor whose agent's call ends
hears ``[tones] ended`` and is hung up. Both are a ``playback`` followed by a ``hangup`` sent to the
parked channel: the phone must receive the whole tone before the BYE, and then the BYE (never left
in silence). The lab's tones are one continuous tone each (error 2.9 kHz for 0.9 s, ended 1.15 kHz
for 0.8 s); the phone's recording of everything it received says which it heard and for how long.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .esl import wait_until
from .freeswitch import AGENT, AGENT2, SUP
from .lab import ENDED_HZ, ENDED_SECONDS, ERROR_HZ, ERROR_SECONDS, Lab, supervisor_leg
from .test_topologies import resolve, trunk_call_to

TONES = {"error": ERROR_HZ, "ended": ENDED_HZ}
# Heard for at least this share of its length: the first packets may reach the phone before its
# recording starts; a tone cut by the hang-up is heard for 0.0 s.
WHOLE = 2 / 3


@pytest.fixture
def idle(lab: Lab) -> Iterator[Lab]:
    lab.wait_pbx_idle()
    yield lab
    lab.hang_up_everything()


def new_record(lab: Lab, before: set[int], what: str) -> dict:
    return wait_until(lambda: next((r for r in lab.audit() if r["id"] not in before), None),
                      f"the audit record of {what}", 15, interval=0.1)  # type: ignore[return-value]


@pytest.mark.parametrize("caller,outcome,reason", [
    (AGENT2, "denied", "not_supervisor"),  # an agent dials a supervisor's code
    (SUP, "no_active_call", None),  # a supervisor dials an extension with no call
], ids=["not_supervisor", "no_active_call"])
def test_a_refused_feature_code_plays_the_whole_error_tone_then_hangs_up(idle: Lab, caller: str, outcome: str,
                                                                       reason: str | None) -> None:
    lab = idle
    before = {r["id"] for r in lab.audit()}
    start = lab.mark()
    phone = supervisor_leg(lab, caller, "*33", AGENT)
    lab.ended(phone, start)  # hung up by the PBX: nobody is left in silence
    got = lab.heard_seconds(phone, TONES)
    assert got["error"] >= WHOLE * ERROR_SECONDS and got["ended"] == 0, (
        f"the refused phone heard {got} (the error tone lasts {ERROR_SECONDS} s)")
    record = new_record(lab, before, "the refusal")
    assert (record["outcome"], record["reason"], record["agent"]) == (outcome, reason, AGENT)


def test_a_supervisor_whose_agent_hangs_up_hears_the_whole_end_tone_then_is_hung_up(idle: Lab) -> None:
    lab = idle
    call = resolve(lab, trunk_call_to(lab, "5551212", AGENT))
    sup = lab.answered(supervisor_leg(lab, SUP, "*33", AGENT))
    sup_pbx = lab.pbx_uuid_of(sup)
    lab.wait_record(sup_pbx, "eavesdrop running", lambda r: r["modes"])
    start = lab.mark()
    lab.hangup(call.agent)
    lab.ended(sup, start)
    got = lab.heard_seconds(sup, TONES)
    assert got["ended"] >= WHOLE * ENDED_SECONDS and got["error"] == 0, (
        f"the supervisor heard {got} after the agent hung up (the end tone lasts {ENDED_SECONDS} s)")
    record = lab.wait_record(sup_pbx, "closed", lambda r: r["outcome"] != "active")
    assert (record["outcome"], record["end_reason"]) == ("completed", "call_ended")
