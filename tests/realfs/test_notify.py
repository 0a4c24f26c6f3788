"""Soft entry on a real FreeSWITCH, by audio: the notification tone (uuid_displace, mux) reaches
exactly the parties the team says, mixed under the call, which goes on undisturbed.

A trunk customer talks to agent 1000; supervisor 1002 enters in listen (*33: nobody notified),
keys 2 (whisper: the agent) and 3 (barge: agent and customer). Each endpoint sends its own tone;
the lab's notify tone is 1.9 kHz for 2 s, so the window analysed after each change lies inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from .audio import heard
from .freeswitch import AGENT, SUP
from .lab import NOTIFY_HZ, Lab, supervisor_leg
from .test_topologies import expected, resolve, trunk_call_to


@pytest.fixture
def idle(lab: Lab) -> Iterator[Lab]:
    """Starts and ends with an idle PBX."""
    lab.wait_pbx_idle()
    yield lab
    lab.hang_up_everything()


def hearing_with_notify(lab: Lab, legs: list, context: str, since: float | None = None) -> dict[str, set[str]]:
    """Who hears what in the window after ``since`` (the mode's start as recorded), the notify tone
    included (as "notify")."""
    window = lab.listen_window(legs, since)
    tones = {leg.role: leg.tone for leg in legs} | {"notify": NOTIFY_HZ}
    return {leg.role: heard(window[leg.role], {r: f for r, f in tones.items() if r != leg.role}, f"{context}: {leg.role}")
            for leg in legs}


def test_the_notification_tone_reaches_only_the_parties_the_team_names(idle: Lab) -> None:
    lab = idle
    call = resolve(lab, trunk_call_to(lab, "5551212", AGENT))
    sup = lab.answered(supervisor_leg(lab, SUP, "*33", AGENT))
    sup_pbx = lab.pbx_uuid_of(sup)
    lab.wait_record(sup_pbx, "eavesdrop running", lambda r: r["modes"])
    legs = [call.agent, call.customer, sup]
    # listen: nobody is notified, and the call is as it was
    got = hearing_with_notify(lab, legs, "listen")
    assert got["agent"] == {"customer"} and got["customer"] == {"agent"}, got
    assert "notify" not in got["supervisor"], got

    for n, (key, mode, notified) in enumerate((("2", "whisper", {"agent"}), ("3", "barge", {"agent", "customer"})), start=2):
        lab.press(sup, key)
        record = lab.wait_record(sup_pbx, f"mode {mode}", lambda r, n=n: len(r["modes"]) >= n)
        # the tone starts as the daemon records the mode: listen from then, however late the record is read
        since = datetime.fromisoformat(record["modes"][n - 1]["at"].replace("Z", "+00:00")).timestamp()
        got = hearing_with_notify(lab, legs, mode, since)
        want = expected(mode)
        for role in ("agent", "customer"):
            # the call's audio and the supervisor go on under the tone: mixed, not replaced
            assert got[role] - {"notify"} == want[role], f"{mode}: the {role} hears {sorted(got[role])}"
            assert ("notify" in got[role]) == (role in notified), f"{mode}: the {role} hears {sorted(got[role])}"
        assert got["supervisor"] - {"notify"} == want["supervisor"], got

    lab.hangup(sup)
    record = lab.wait_record(sup_pbx, "closed", lambda r: r["outcome"] != "active")
    assert [(m["mode"], m.get("notified", [])) for m in record["modes"]] == [
        ("listen", []), ("whisper", ["agent"]), ("barge", ["agent", "customer"]),
    ]
