"""The resync decisions as a table: (snapshot, open interventions, stored Core-UUID) -> effects."""

from __future__ import annotations

from typing import Any

import pytest

from fsbarge.core.barge import AddMode, CloseAudit, Execute, SendKey
from fsbarge.core.channels import channel_from_row
from fsbarge.core.resync import Plan, freeswitch_restarted, plan

from .factories import AGENT, ENDED_TONE, ERROR_TONE, SUP, Rig, bug, dtmf, execute, hangup, park

CUSTOMER = "10000000-0000-0000-0000-000000customer"
OTHER_SUP = "60000000-0000-0000-0000-0000000other"


def planned(rig: Rig, records: list[dict[str, Any]], *, decided: set[str], **kw: Any) -> Plan:
    """resync.plan as the service calls it: the machine then holds the interventions it decided."""
    out = plan(rig.table, records, active=rig.machine.active, tones=rig.machine.tones,
               decided=rig.machine.decided.keys() | decided, **kw)
    rig.machine.adopt(out.interventions)
    return out


def row(uuid: str, *, app: str | None = None, data: str | None = None, dest: str | None = None, presence: str | None = None) -> dict[str, str]:
    return {
        "uuid": uuid, "direction": "inbound", "callstate": "ACTIVE", "name": f"sofia/internal/{uuid[:4]}",
        "application": app or "", "application_data": data or "", "dest": dest or "", "presence_id": presence or "",
    }


SNAPSHOTS: dict[str, list[dict[str, str]]] = {
    "eavesdropping": [row(AGENT, presence="1000@pbx"), row(CUSTOMER), row(SUP, app="eavesdrop", data=AGENT, dest="*331000")],
    "parked": [row(AGENT, presence="1000@pbx"), row(CUSTOMER), row(SUP, app="park", dest="*331000")],
    "supervisor gone": [row(AGENT, presence="1000@pbx"), row(CUSTOMER)],
    "call gone": [row(SUP, app="park", dest="*331000")],
    "everything gone": [],
}


def record(modes: list[str] | None = None, current: str | None = None) -> dict[str, Any]:
    history = [{"mode": m, "at": 950.0 + i, "source": "dtmf", "refused": False} for i, m in enumerate(modes or [])]
    return {
        "uid": "r1", "supervisor_uuid": SUP, "target_uuid": AGENT, "supervisor": "1002", "agent": "1000",
        "requested_mode": "listen", "current_mode": current, "started_at": 900.0, "modes": history,
    }


NOW = 2000.0
LAST_SEEN = 990.0
HANG_UP = Execute(SUP, "hangup", "NORMAL_CLEARING")
# the mode was unknown from the last moment the daemon knew it (here last_seen) to the re-attach
DOWN = AddMode(SUP, "unknown", LAST_SEEN, "daemon_down")
LOST = AddMode(SUP, "unknown", LAST_SEEN, "connection_lost")

CASES = [
    # snapshot, record (None: no open record), stored core, core, first connection, expected effects
    # re-attached: the gap is marked, then the mode is re-asserted once the events held during the
    # resync are applied
    ("eavesdropping", record(["listen", "barge"], "barge"), "c1", "c1", True,
     [DOWN, AddMode(SUP, "barge", NOW, "reattach"), SendKey(SUP, "3")]),
    ("eavesdropping", record(["listen", "whisper"], "whisper"), "c1", "c1", False,
     [LOST, AddMode(SUP, "whisper", NOW, "reattach"), SendKey(SUP, "2")]),
    ("eavesdropping", record(["listen"], "listen"), None, "c1", True,  # first start after an upgrade
     [DOWN, AddMode(SUP, "listen", NOW, "reattach"), SendKey(SUP, "0")]),
    # killed between the gap entry and the re-attach: the last known mode is re-asserted, not "unknown"
    ("eavesdropping", record(["listen", "barge", "unknown"], "unknown"), "c1", "c1", True,
     [AddMode(SUP, "unknown", 990.0, "daemon_down"), AddMode(SUP, "barge", NOW, "reattach"), SendKey(SUP, "3")]),
    # FreeSWITCH restarted (possibly together with the daemon): the Core-UUID decides, not the channels;
    # when in the gap the call ended nobody knows, so the gap is unknown up to the close
    ("everything gone", record(["listen"], "listen"), "c1", "c2", True,
     [DOWN, CloseAudit(SUP, "completed", NOW, "freeswitch_shutdown")]),
    ("everything gone", record(["listen"], "listen"), "c1", "c2", False,
     [LOST, CloseAudit(SUP, "completed", NOW, "freeswitch_shutdown")]),
    # our own restart, the supervisor is gone: ended some time after what we last saw (no gap claimed)
    ("supervisor gone", record(["listen", "whisper"], "whisper"), "c1", "c1", True,
     [CloseAudit(SUP, "completed", 990.0, "daemon_restart")]),
    # a reconnect: what the channels show decides
    ("supervisor gone", record(["listen"], "listen"), "c1", "c1", False,
     [LOST, CloseAudit(SUP, "completed", NOW, "supervisor_hangup")]),
    ("call gone", record(["listen"], "listen"), "c1", "c1", False,
     [LOST, CloseAudit(SUP, "completed", NOW, "call_ended"), Execute(SUP, "playback", ENDED_TONE, event_lock=True), HANG_UP]),
    # back in park with the agent's call alive: the supervisor left with *
    ("parked", record(["listen"], "listen"), "c1", "c1", False,
     [LOST, CloseAudit(SUP, "completed", NOW, "supervisor_left"), Execute(SUP, "playback", ENDED_TONE, event_lock=True), HANG_UP]),
    # eavesdrop never started: failed, the parked supervisor hears the error tone; no mode, no gap
    ("parked", record(), "c1", "c1", True,
     [CloseAudit(SUP, "failed", NOW, None, reason="daemon_restart"), Execute(SUP, "playback", ERROR_TONE, event_lock=True), HANG_UP]),
    ("parked", record(), "c1", "c1", False,
     [CloseAudit(SUP, "failed", NOW, None, reason="connection_lost"), Execute(SUP, "playback", ERROR_TONE, event_lock=True), HANG_UP]),
]


@pytest.mark.parametrize(("snapshot", "rec", "stored", "core", "first", "expected"), CASES)
def test_resync_decides(snapshot: str, rec: dict, stored: str | None, core: str, first: bool, expected: list) -> None:
    rig = Rig()
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS[snapshot]])
    out = planned(rig, [rec], stored_core=stored, core=core, first=first, last_seen=LAST_SEEN, decided={SUP}, now=NOW)
    assert out.effects + rig.machine.reassert(out.reassert, NOW) == expected
    assert out.freeswitch_restarted == (stored is not None and stored != core)
    assert out.serve == []
    assert (SUP in rig.machine.active) == any(isinstance(e, SendKey) for e in expected)


def test_a_key_pressed_during_the_resync_is_what_gets_re_asserted() -> None:
    """FreeSWITCH applied the key before our re-assert: the re-assert must carry that key's mode."""
    rig = Rig()
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS["eavesdropping"]])
    out = planned(rig, [record(["listen", "barge"], "barge")], stored_core="c1", core="c1", first=True,
               last_seen=990.0, decided={SUP}, now=NOW)
    held = rig.feed(dtmf("0"))  # held while the snapshot was taken, applied after it
    assert held == [AddMode(SUP, "listen", rig.now, "dtmf")]
    assert rig.machine.reassert(out.reassert, NOW) == [AddMode(SUP, "listen", NOW, "reattach"), SendKey(SUP, "0")]


@pytest.mark.parametrize(
    ("decided", "expected_serve", "expected_effects"),
    [
        (set(), [SUP], []),  # dialled while we were away, or in the resync window: serve it
        # decided (audited) before, but the tone and hang-up were lost: finish the job
        ({SUP}, [], [Execute(SUP, "playback", ERROR_TONE, event_lock=True), Execute(SUP, "hangup", "CALL_REJECTED")]),
    ],
)
def test_parked_feature_code_calls(decided: set, expected_serve: list, expected_effects: list) -> None:
    rig = Rig()
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS["parked"]] + [channel_from_row(row(OTHER_SUP, app="park", dest="5000"))])
    out = planned(rig, [], stored_core="c1", core="c1", first=False, last_seen=None, decided=decided, now=NOW)
    assert out.serve == expected_serve  # a call parked on something else is none of ours
    assert out.effects == expected_effects


@pytest.mark.parametrize(
    ("held", "reason"),
    [
        (lambda: hangup(SUP), "supervisor_hangup"),
        (lambda: hangup(AGENT), "call_ended"),
        (lambda: hangup(SUP, "SYSTEM_SHUTDOWN"), "freeswitch_shutdown"),
        (lambda: dtmf("*"), "supervisor_left"),
    ],
)
def test_an_ending_among_the_held_events_beats_a_guess(held, reason: str) -> None:
    """The snapshot no longer shows the supervisor; the held event says how and when it ended."""
    rig = Rig()
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS["everything gone"]])
    out = planned(rig, [record(["listen"], "listen")], stored_core="c1", core="c1", first=True,
               last_seen=990.0, decided={SUP}, now=NOW, held=[(held(), 1995.0)])
    assert out.effects == [DOWN, CloseAudit(SUP, "completed", 1995.0, reason)]


def test_a_supervisor_sent_from_another_node_and_parked_while_we_were_away_is_served() -> None:
    """The fsbarge_node drop-in parked a cross-node call (fsbarge-<ticket>) during the resync: served
    like a missed CHANNEL_PARK (the service reads fsbarge_ticket back with uuid_getvar)."""
    rig = Rig()
    arrival = row(OTHER_SUP, app="park", dest="fsbarge-" + "0123456789abcdef" * 2)
    other = row(SUP, app="park", dest="fsbarge-not-a-ticket")
    rig.table.replace_all([channel_from_row(arrival), channel_from_row(other)])
    out = planned(rig, [], stored_core="c1", core="c1", first=False, last_seen=None, decided=set(), now=NOW)
    assert out.serve == [OTHER_SUP]


GAP_CASES = [
    # known_until (last_seen), the record's mode times, expected start of the unknown gap
    (990.0, [950.0], 990.0),  # the last moment known, after the last key
    (990.0, [950.0, 995.0], 995.0),  # a key journaled after the last heartbeat: known up to it
    (None, [950.0, 960.0], 960.0),  # no last-seen time (first start after an upgrade): the last key
    (2500.0, [950.0], NOW),  # a clock that stepped back: never after the re-attach itself
]


@pytest.mark.parametrize(("known_until", "times", "start"), GAP_CASES)
def test_the_gap_starts_at_the_last_moment_the_mode_was_known(known_until: float | None, times: list, start: float) -> None:
    rig = Rig()
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS["eavesdropping"]])
    rec = record(["listen"] * len(times), "listen")
    for entry, at in zip(rec["modes"], times):
        entry["at"] = at
    out = planned(rig, [rec], stored_core="c1", core="c1", first=True, last_seen=known_until, decided={SUP}, now=NOW)
    assert out.effects == [AddMode(SUP, "unknown", start, "daemon_down")]


def test_a_refused_key_and_a_gap_do_not_count_as_the_mode_to_re_assert() -> None:
    rig = Rig()
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS["eavesdropping"]])
    rec = record(["whisper", "unknown", "barge"], "unknown")
    rec["modes"][2]["refused"] = True
    out = planned(rig, [rec], stored_core="c1", core="c1", first=False, last_seen=990.0, decided={SUP}, now=NOW)
    assert rig.machine.reassert(out.reassert, NOW) == [AddMode(SUP, "whisper", NOW, "reattach"), SendKey(SUP, "2")]


@pytest.mark.parametrize(
    ("stored", "core", "restarted"),
    [("c1", "c1", False), ("c1", "c2", True), (None, "c2", False), ("c1", None, False), ("c1", "", False)],
)
def test_freeswitch_restarted_only_when_a_new_core_uuid_replaces_a_known_one(stored: str | None, core: str | None, restarted: bool) -> None:
    assert freeswitch_restarted(stored, core) is restarted


@pytest.mark.parametrize("snapshot", ["eavesdropping", "supervisor gone"])
@pytest.mark.parametrize("core", ["c1", "c2"])
def test_the_plan_changes_nothing_it_is_given(snapshot: str, core: str) -> None:
    """Re-attached, closed or gone with a FreeSWITCH restart: the machine's interventions stay as
    they were until the machine adopts the plan."""
    rig = Rig()
    rig.call()
    rig.feed(park("whisper"), execute("eavesdrop"), bug(), dtmf("0"))
    iv = rig.machine.active[SUP]
    before = (dict(rig.machine.active), iv.state, iv.mode, iv.commanded, dict(rig.machine.decided), set(rig.machine.abandoned))
    rig.table.replace_all([channel_from_row(r) for r in SNAPSHOTS[snapshot]])
    out = plan(rig.table, [record(["whisper", "barge"], "barge")], active=rig.machine.active, tones=rig.machine.tones,
               stored_core="c1", core=core, first=False, last_seen=LAST_SEEN, decided=set(), now=NOW)
    assert (dict(rig.machine.active), iv.state, iv.mode, iv.commanded, dict(rig.machine.decided), set(rig.machine.abandoned)) == before
    reattached = snapshot == "eavesdropping" and core == "c1"
    assert list(out.interventions.active) == ([SUP] if reattached else [])
    if reattached:
        assert out.interventions.active[SUP] is not iv and out.interventions.active[SUP].mode == "barge"
    rig.machine.adopt(out.interventions)
    assert (SUP in rig.machine.active) == reattached
