"""The intervention state machine, table-driven: event in, effects out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbarge.core.barge import MODE_KEYS, AddMode, CloseAudit, Execute, OpenAudit, Parked, SendKey, parked_request
from tests.factories import (
    AGENT,
    CUSTOMER,
    ENDED_TONE,
    ERROR_TONE,
    SUP,
    SUP2,
    Rig,
    bug,
    complete,
    dtmf,
    execute,
    hangup,
    park,
)


def started(rig: Rig, mode: str = "listen", sup: str = SUP, supervisor: str = "1002", target: str = "1000") -> None:
    """Bring an intervention to the point where audio flows."""
    rig.feed(park(mode, target, supervisor, uuid=sup))
    rig.feed(execute("eavesdrop", sup), bug())


def of(effects: list, kind: type) -> list:
    return [e for e in effects if isinstance(e, kind)]


@pytest.mark.parametrize(
    ("mode", "aleg", "bleg"),
    [("listen", "false", "false"), ("whisper", "false", "true"), ("barge", "true", "true")],
)
def test_feature_code_starts_eavesdrop_on_the_agent_leg_in_its_mode(mode: str, aleg: str, bleg: str) -> None:
    rig = Rig()
    rig.call()
    effects = rig.feed(park(mode))
    opened = effects[0]
    assert isinstance(opened, OpenAudit)
    assert opened.fields["outcome"] == "active"
    assert (opened.fields["supervisor"], opened.fields["agent"], opened.fields["customer"]) == ("1002", "1000", "1001")
    assert opened.fields["target_uuid"] == AGENT  # the agent's own leg, never the customer's
    assert effects[1:] == [
        Execute(SUP, "set", "eavesdrop_enable_dtmf=true"),
        Execute(SUP, "set", f"eavesdrop_whisper_aleg={aleg}"),
        Execute(SUP, "set", f"eavesdrop_whisper_bleg={bleg}"),
        Execute(SUP, "eavesdrop", AGENT, event_uuid="app-1"),
    ]
    # The first mode is recorded when audio starts (MEDIA_BUG_START on the target).
    assert rig.feed(execute("eavesdrop", app_uuid="app-1")) == []
    assert rig.feed(bug()) == [AddMode(SUP, mode, rig.now, "feature_code")]


KEYS = {"0": "listen", "1": "customer_whisper", "2": "whisper", "3": "barge"}


@pytest.mark.parametrize("start", ["listen", "whisper", "barge"])
@pytest.mark.parametrize("digit", ["0", "1", "2", "3"])
def test_each_key_in_each_mode(start: str, digit: str) -> None:
    rig = Rig()
    rig.call()
    started(rig, start)
    effects = rig.feed(dtmf(digit))
    if KEYS[digit] == start:
        assert effects == []
    else:
        assert effects == [AddMode(SUP, KEYS[digit], rig.now, "dtmf")]


@pytest.mark.parametrize("digit", ["4", "5", "9", "#"])
def test_keys_without_a_mode_change_nothing(digit: str) -> None:
    rig = Rig()
    rig.call()
    started(rig)
    assert rig.feed(dtmf(digit)) == []


@pytest.mark.parametrize(("digit", "mode"), [("3", "barge"), ("1", "customer_whisper")])
def test_a_key_into_a_mode_the_team_does_not_allow_is_undone(digit: str, mode: str) -> None:
    rig = Rig()
    rig.call(customer="1001", agent="1010")
    started(rig, "whisper", supervisor="1012", target="1010")
    effects = rig.feed(dtmf(digit))
    assert effects == [AddMode(SUP, mode, rig.now, "dtmf", refused=True), SendKey(SUP, "2")]
    # and the machine still believes the previous mode; after a command of ours, an accepted key is
    # followed by its mode, so a key and our command crossing on the wire cannot leave FreeSWITCH elsewhere
    assert rig.feed(dtmf("0")) == [AddMode(SUP, "listen", rig.now, "dtmf"), SendKey(SUP, "0")]


def test_star_leaves_and_hangs_the_supervisor_up() -> None:
    rig = Rig()
    rig.call()
    started(rig)
    assert rig.feed(dtmf("*")) == []
    rig.feed(bug("MEDIA_BUG_STOP"))
    effects = rig.feed(complete("eavesdrop"))
    assert effects == [CloseAudit(SUP, "completed", rig.now, "supervisor_left"), Execute(SUP, "hangup", "NORMAL_CLEARING")]


def test_supervisor_hangs_up() -> None:
    rig = Rig()
    rig.call()
    started(rig, "barge")
    effects = rig.feed(hangup(SUP))
    assert effects == [CloseAudit(SUP, "completed", rig.now, "supervisor_hangup")]
    # the events that follow the hang-up change nothing
    assert rig.feed(bug("MEDIA_BUG_STOP"), complete("eavesdrop", answer_state="hangup")) == []


def test_agent_hangs_up_mid_barge_closes_then_tones_and_hangs_up_the_supervisor() -> None:
    rig = Rig()
    rig.call()
    started(rig, "barge")
    closed = rig.feed(hangup(AGENT))
    assert closed == [CloseAudit(SUP, "completed", rig.now, "call_ended")]
    rig.feed(bug("MEDIA_BUG_STOP"))
    # Back in park: the supervisor hears a short tone and is hung up, not left in silence.
    assert rig.feed(complete("eavesdrop")) == [Execute(SUP, "playback", ENDED_TONE, event_lock=True), Execute(SUP, "hangup", "NORMAL_CLEARING")]


def test_customer_hangs_up_mid_barge() -> None:
    rig = Rig()
    rig.call()
    started(rig, "barge")
    assert rig.feed(hangup(CUSTOMER)) == []  # the customer's leg is not the target
    closed = rig.feed(hangup(AGENT))  # hangup_after_bridge takes the agent leg down
    assert closed == [CloseAudit(SUP, "completed", rig.now, "call_ended")]
    assert of(rig.feed(complete("eavesdrop")), Execute)[-1] == Execute(SUP, "hangup", "NORMAL_CLEARING")


def test_freeswitch_shutdown_hangup_cause() -> None:
    rig = Rig()
    rig.call()
    started(rig)
    assert rig.feed(hangup(SUP, "SYSTEM_SHUTDOWN")) == [CloseAudit(SUP, "completed", rig.now, "freeswitch_shutdown")]


def test_shutdown_event_closes_everything() -> None:
    rig = Rig()
    rig.call()
    started(rig)
    from tests.factories import ev

    assert rig.feed(ev("SHUTDOWN", None)) == [CloseAudit(SUP, "completed", rig.now, "freeswitch_shutdown")]


REFUSALS = [
    # (why, park arguments, outcome, reason)
    ("unauthenticated phone (no user_name)", dict(mode="listen", target="1000", supervisor=None), "denied", "unauthenticated"),
    ("not a supervisor", dict(mode="listen", target="1000", supervisor="1001"), "denied", "not_supervisor"),
    ("not in the supervisor's team", dict(mode="listen", target="1000", supervisor="1012"), "denied", "not_in_team"),
    ("unknown extension", dict(mode="listen", target="4242", supervisor="1002"), "denied", "not_in_team"),
    ("mode not allowed", dict(mode="barge", target="1010", supervisor="1012"), "denied", "mode_not_allowed"),
    ("protected target (a supervisor)", dict(mode="listen", target="1005", supervisor="1002"), "denied", "protected_target"),
    ("self target", dict(mode="listen", target="1002", supervisor="1002"), "denied", "self_target"),
    ("agent with no call", dict(mode="listen", target="1004", supervisor="1002"), "no_active_call", None),
]


@pytest.mark.parametrize(("why", "req", "outcome", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_are_audited_and_audible(why: str, req: dict, outcome: str, reason: str | None) -> None:
    rig = Rig()
    rig.call()
    effects = rig.feed(park(**req))
    opened = effects[0]
    assert isinstance(opened, OpenAudit)
    assert (opened.fields["outcome"], opened.fields["reason"]) == (outcome, reason)
    assert opened.fields["ended_at"] == opened.fields["started_at"] == rig.now
    assert effects[1:] == [Execute(SUP, "playback", ERROR_TONE, event_lock=True), Execute(SUP, "hangup", "CALL_REJECTED")]
    assert rig.machine.active == {}


def test_an_agent_whose_call_is_on_another_node_is_refused_naming_both_nodes() -> None:
    rig = Rig()
    rig.machine.elsewhere = lambda agent: "pbx2" if agent == "1004" else None
    effects = rig.feed(park(mode="listen", target="1004", supervisor="1002"))
    fields = effects[0].fields
    assert (fields["outcome"], fields["reason"]) == ("denied", "target_on_other_node")
    assert (fields["node"], fields["supervisor_node"]) == ("pbx2", "pbx1")
    assert effects[1:] == [Execute(SUP, "playback", ERROR_TONE, event_lock=True), Execute(SUP, "hangup", "CALL_REJECTED")]
    # the policy still comes first, and a call on this node is barged here
    assert rig.feed(park(mode="listen", target="1010", supervisor="1002", uuid=SUP2))[0].fields["reason"] == "not_in_team"
    rig.machine.elsewhere = lambda agent: "pbx2"
    rig.call()
    third = "50000000-0000-0000-0000-00000000sup3"
    assert Execute(third, "eavesdrop", AGENT, event_uuid="app-1") in rig.feed(park("listen", "1000", "1005", uuid=third))


def test_two_supervisors_may_listen_to_the_same_call() -> None:
    rig = Rig()
    rig.call()
    started(rig, "listen", SUP, "1002")
    effects = rig.feed(park("listen", "1000", "1005", uuid=SUP2))
    assert of(effects, OpenAudit)[0].fields["outcome"] == "active"
    assert Execute(SUP2, "eavesdrop", AGENT, event_uuid="app-2") in effects


def test_a_second_barger_is_refused() -> None:
    rig = Rig()
    rig.call()
    started(rig, "barge", SUP, "1002")
    effects = rig.feed(park("barge", "1000", "1005", uuid=SUP2))
    assert (of(effects, OpenAudit)[0].fields["outcome"], of(effects, OpenAudit)[0].fields["reason"]) == ("denied", "already_barged")


def test_a_listener_cannot_key_into_barge_while_another_barges() -> None:
    rig = Rig()
    rig.call()
    started(rig, "barge", SUP, "1002")
    rig.feed(park("listen", "1000", "1005", uuid=SUP2))
    rig.feed(execute("eavesdrop", SUP2), bug())
    assert rig.feed(dtmf("3", SUP2)) == [AddMode(SUP2, "barge", rig.now, "dtmf", refused=True), SendKey(SUP2, "0")]


def test_a_second_barger_is_allowed_when_configured() -> None:
    rig = Rig(allow_second_barge=True)
    rig.call()
    started(rig, "barge", SUP, "1002")
    effects = rig.feed(park("barge", "1000", "1005", uuid=SUP2))
    assert of(effects, OpenAudit)[0].fields["outcome"] == "active"


def test_target_vanished_between_lookup_and_execute() -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))
    # FreeSWITCH returns execute and complete at once, no media bug (captures 04).
    assert rig.feed(execute("eavesdrop")) == []
    effects = rig.feed(complete("eavesdrop"))
    assert effects == [
        CloseAudit(SUP, "failed", rig.now, None, reason="target_gone"),
        Execute(SUP, "playback", ERROR_TONE, event_lock=True),
        Execute(SUP, "hangup", "NORMAL_CLEARING"),
    ]


def test_another_application_on_the_supervisor_channel_is_not_taken_for_our_eavesdrop() -> None:
    """Only the Application-UUID of fsbarge's own sendmsg counts (captures 03): an eavesdrop the
    dialplan or another tool runs on the same channel neither starts nor ends the intervention."""
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))
    assert rig.feed(execute("eavesdrop", app_uuid="someone-else"), bug()) == []
    assert rig.feed(complete("eavesdrop", app_uuid="someone-else")) == []
    assert SUP in rig.machine.active
    assert rig.feed(execute("eavesdrop", app_uuid="app-1"), bug()) == [AddMode(SUP, "listen", rig.now, "feature_code")]
    assert of(rig.feed(complete("eavesdrop", app_uuid="app-1")), CloseAudit)[0].end_reason == "supervisor_left"


def test_dtmf_before_the_execute_event_still_counts() -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))
    effects = rig.feed(dtmf("2"))
    assert effects == [AddMode(SUP, "listen", rig.now, "feature_code"), AddMode(SUP, "whisper", rig.now, "dtmf")]
    # the late EXECUTE / MEDIA_BUG_START do not restart it
    assert rig.feed(execute("eavesdrop"), bug()) == []


def test_a_second_park_of_the_same_channel_starts_nothing() -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))
    assert rig.feed(park("listen")) == []


def test_supervisor_hangs_up_before_eavesdrop_starts() -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("whisper"))
    assert rig.feed(hangup(SUP)) == [CloseAudit(SUP, "completed", rig.now, "supervisor_hangup")]


def test_reattach_after_restart_reasserts_the_recorded_mode() -> None:
    rig = Rig()
    rig.call()
    # the supervisor's channel as show channels presents it after a restart
    rig.feed(execute("eavesdrop", SUP, AGENT))
    records = [
        {"id": 7, "supervisor_uuid": SUP, "target_uuid": AGENT, "supervisor": "1002", "agent": "1000",
         "requested_mode": "listen", "current_mode": "whisper", "started_at": 900.0, "last_mode_at": 950.0}
    ]
    effects = rig.machine.reattach(records, 2000.0, restarted=True, last_seen=990.0)
    assert effects == [SendKey(SUP, "2"), AddMode(SUP, "whisper", 2000.0, "reattach")]
    assert rig.feed(hangup(SUP)) == [CloseAudit(SUP, "completed", rig.now, "supervisor_hangup")]


def test_record_whose_supervisor_is_gone_after_restart_closes_as_daemon_restart() -> None:
    rig = Rig()
    rig.call()
    records = [
        {"id": 7, "supervisor_uuid": SUP, "target_uuid": AGENT, "supervisor": "1002", "agent": "1000",
         "requested_mode": "listen", "current_mode": "listen", "started_at": 900.0, "last_mode_at": 950.0}
    ]
    effects = rig.machine.reattach(records, 2000.0, restarted=True, last_seen=990.0)
    assert effects == [CloseAudit(SUP, "completed", 990.0, "daemon_restart")]


def test_record_whose_supervisor_left_during_a_reconnect_is_closed_by_what_channels_show() -> None:
    rig = Rig()
    rig.call()
    started(rig)
    rig.table.replace_all([c for c in rig.table.channels.values() if c.uuid != SUP])
    records = [{"id": 7, "supervisor_uuid": SUP, "target_uuid": AGENT, "current_mode": "listen", "started_at": 900.0}]
    effects = rig.machine.reattach(records, 2000.0, restarted=False, last_seen=None)
    assert effects == [CloseAudit(SUP, "completed", 2000.0, "supervisor_hangup")]
    assert rig.machine.active == {}


@pytest.mark.parametrize(("restarted", "reason"), [(True, "daemon_restart"), (False, "connection_lost")])
def test_record_that_never_started_is_failed_after_a_reconnect(restarted: bool, reason: str) -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))  # the supervisor is parked, eavesdrop never ran
    records = [{"id": 7, "supervisor_uuid": SUP, "target_uuid": AGENT, "current_mode": None, "modes": [], "started_at": 900.0}]
    effects = rig.machine.reattach(records, 2000.0, restarted=restarted, last_seen=None)
    assert effects == [
        CloseAudit(SUP, "failed", 2000.0, None, reason=reason),
        Execute(SUP, "playback", ERROR_TONE, event_lock=True),
        Execute(SUP, "hangup", "NORMAL_CLEARING"),
    ]


def test_an_eavesdrop_that_starts_after_the_record_was_given_up_is_stopped() -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))
    records = [{"id": 7, "supervisor_uuid": SUP, "target_uuid": AGENT, "current_mode": None, "modes": [], "started_at": 900.0}]
    rig.machine.reattach(records, 2000.0, restarted=False, last_seen=None)
    # FreeSWITCH runs the eavesdrop it had read before the connection went: stop it,
    # the queued tone and hang-up then run.
    assert rig.feed(execute("eavesdrop")) == [SendKey(SUP, "*")]
    assert rig.feed(hangup(SUP)) == []
    assert rig.machine.abandoned == set()


@settings(max_examples=150, deadline=None)
@given(
    start=st.sampled_from(["listen", "whisper"]),
    digits=st.lists(st.sampled_from(list("0123456789#")), max_size=25),
)
def test_any_key_sequence_keeps_the_machine_in_step_with_freeswitch(start: str, digits: list[str]) -> None:
    """Whatever the keys, the audited modes follow FreeSWITCH, refused keys are undone, and a
    refused key never becomes the current mode (team support allows listen and whisper only)."""
    rig = Rig()
    rig.call(customer="1001", agent="1010")
    started(rig, start, supervisor="1012", target="1010")
    fs_mode = start  # what FreeSWITCH's eavesdrop is doing
    for d in digits:
        effects = rig.feed(dtmf(d))
        wanted = KEYS.get(d)
        if wanted is None or wanted == fs_mode:
            assert effects == []
            continue
        fs_mode = wanted  # FreeSWITCH applies the key before we see it
        if wanted in ("listen", "whisper"):
            assert effects[0] == AddMode(SUP, wanted, rig.now, "dtmf")
            # once we have sent a key of our own, each accepted key is confirmed with its own mode
            assert effects[1:] in ([], [SendKey(SUP, MODE_KEYS[wanted])])
        else:
            undo = [e for e in effects if isinstance(e, SendKey)]
            assert effects[0] == AddMode(SUP, wanted, rig.now, "dtmf", refused=True)
            assert len(undo) == 1
            fs_mode = {"0": "listen", "2": "whisper"}[undo[0].key]  # our undo puts it back
        assert rig.machine.active[SUP].mode == fs_mode


# (why, park arguments, the team recorded with the attempt): the daemon decides it with the attempt,
# so nobody reading the audit later needs the configuration (factories.config: sales has agents
# 1000/1004 and supervisors 1002/1005; support has 1010 and 1012, listen and whisper only)
TEAM_OF_ATTEMPT = [
    ("allowed: the team whose policy let the supervisor act", dict(mode="listen", target="1000", supervisor="1002"), "sales"),
    ("allowed in the other team", dict(mode="whisper", target="1010", supervisor="1012"), "support"),
    ("no call: still the team that allowed it", dict(mode="listen", target="1004", supervisor="1005"), "sales"),
    ("mode not allowed: the supervisor's team with the agent", dict(mode="barge", target="1010", supervisor="1012"), "support"),
    ("not in team: the agent's first team", dict(mode="listen", target="1010", supervisor="1002"), "support"),
    ("not a supervisor: the agent's first team", dict(mode="listen", target="1000", supervisor="1001"), "sales"),
    ("unauthenticated: the agent's first team", dict(mode="listen", target="1000", supervisor=None), "sales"),
    ("an extension in no team", dict(mode="listen", target="4242", supervisor="1002"), None),
]


@pytest.mark.parametrize(("why", "req", "team"), TEAM_OF_ATTEMPT, ids=[t[0] for t in TEAM_OF_ATTEMPT])
def test_the_attempt_is_recorded_with_its_team(why: str, req: dict, team: str | None) -> None:
    rig = Rig()
    rig.call()
    opened = of(rig.feed(park(**req)), OpenAudit)[0]
    assert opened.fields["team"] == team


def test_the_team_is_the_one_that_allows_the_mode() -> None:
    """A supervisor of two teams of the agent: the record names the team whose `modes` allowed it."""
    from fsbarge.config import Config, NodeConfig, TeamConfig
    from fsbarge.core.policy import Policy

    teams = (TeamConfig("coaching", agents=("1000",), supervisors=("1002",), modes=("listen",)),
             TeamConfig("floor", agents=("1000",), supervisors=("1002",)))
    policy = Policy(Config(path="t.toml", nodes=(NodeConfig("pbx1", "127.0.0.1", 8021, password="x"),), teams=teams))
    assert [policy.team_of("1002", "1000", mode) for mode in ("listen", "barge")] == ["coaching", "floor"]


@pytest.mark.parametrize(
    ("ticket", "target", "kind"),
    [("t0k3n", None, Parked.TICKET), ("t0k3n", "1000", Parked.TICKET), (None, "1000", Parked.DIALLED), (None, None, None)],
)
def test_what_a_parked_channel_asks_for(ticket: str | None, target: str | None, kind: Parked | None) -> None:
    """A ticket wins over a target: the ticket says who and what; neither: not ours."""
    assert parked_request(ticket, target) is kind


def test_a_parked_channel_read_back_after_a_resync_is_served_like_its_channel_park() -> None:
    live, resync = Rig(), Rig()
    for rig in (live, resync):
        rig.call()
    parked = live.feed(park("whisper"))
    served = resync.machine.serve_parked(SUP, ticket=None, target="1000", mode="whisper", supervisor="1002",
                                         caller_number="1002", now=live.now)
    assert served == parked
