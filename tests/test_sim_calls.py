"""The simulated PBX: who is on which leg, the dialplan, eavesdrop start modes and endings."""

from __future__ import annotations

import json

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.sim_fixtures import EslClient, esl_client, named, sim  # noqa: F401


def parked(sim: FreeSwitchSim, c: EslClient, ext: str = "1002", code: str = "*331000") -> str:
    sup = sim.dial(ext, code)
    c.wait_event(named("CHANNEL_PARK", sup))
    return sup


def app_done(app: str, uuid: str):
    return lambda e: e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == app and e.get("Unique-ID") == uuid


def test_agent_calling_out_is_the_inbound_leg_with_user_name(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_CREATE CHANNEL_BRIDGE")
    call = sim.place_call("1000", "1001")
    a = c.wait_event(named("CHANNEL_CREATE", call.a_uuid))
    b = c.wait_event(named("CHANNEL_CREATE", call.b_uuid))
    assert a["Channel-Name"] == "sofia/internal/1000@127.0.0.1" and a["variable_user_name"] == "1000"
    assert a["Call-Direction"] == "inbound" and a["variable_sip_authorized"] == "true"
    assert a["Channel-Presence-ID"] == "1000@127.0.0.1"
    assert b["Channel-Name"] == "sofia/internal/gw+1001@127.0.0.1:5070" and b["Call-Direction"] == "outbound"
    assert b["variable_dialed_user"] == "1001" and "variable_user_name" not in b
    assert b["Channel-Call-UUID"] == call.a_uuid == b["variable_call_uuid"] == b["variable_signal_bond"]
    assert b["Other-Leg-Unique-ID"] == call.a_uuid and b["Other-Type"] == "originator"
    bridge = c.wait_event(named("CHANNEL_BRIDGE", call.a_uuid))
    assert (bridge["Bridge-A-Unique-ID"], bridge["Bridge-B-Unique-ID"]) == (call.a_uuid, call.b_uuid)
    assert bridge["Other-Leg-Unique-ID"] == call.b_uuid and bridge["Other-Type"] == "originatee"
    assert bridge["Caller-Callee-ID-Number"] == "1001"


def test_phone_admitted_by_acl_has_no_user_name(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_PARK")
    sup = sim.dial("1002", "*331000", authenticated=False)
    park = c.wait_event(named("CHANNEL_PARK", sup))
    assert "variable_user_name" not in park and park["variable_sip_authorized"] == "true"
    assert park["variable_sip_acl_authed_by"] == "domains" and park["Caller-Caller-ID-Number"] == "1002"


@pytest.mark.parametrize("code,mode", [("*331000", "listen"), ("*341000", "whisper"), ("*351000", "barge")])
def test_feature_codes_answer_set_and_park(sim: FreeSwitchSim, esl_client, code: str, mode: str) -> None:
    c = esl_client(events="CHANNEL_EXECUTE CHANNEL_ANSWER CHANNEL_PARK")
    sup = sim.dial("1002", code)
    park = c.wait_event(named("CHANNEL_PARK", sup))
    assert park["variable_fsbarge_mode"] == mode and park["variable_fsbarge_target"] == "1000"
    assert park["Answer-State"] == "answered" and park["variable_user_name"] == "1002"
    assert [(e.name, e.get("Application"), e.get("Application-Data")) for e in c.events] == [
        ("CHANNEL_EXECUTE", "answer", None), ("CHANNEL_ANSWER", None, None),
        ("CHANNEL_EXECUTE", "set", f"fsbarge_mode={mode}"), ("CHANNEL_EXECUTE", "set", "fsbarge_target=1000"),
        ("CHANNEL_EXECUTE", "park", None), ("CHANNEL_PARK", None, None)]


@pytest.mark.parametrize("dest", ["*33abc", "*36" + "1000", "5555", "*33"])
def test_unknown_destinations_hang_up_no_route(sim: FreeSwitchSim, esl_client, dest: str) -> None:
    c = esl_client(events="CHANNEL_HANGUP CHANNEL_EXECUTE CHANNEL_DESTROY")
    uuid = sim.dial("1002", dest)
    hangup = c.wait_event(named("CHANNEL_HANGUP", uuid))
    assert hangup["Hangup-Cause"] == "NO_ROUTE_DESTINATION"
    c.wait_event(named("CHANNEL_DESTROY", uuid))
    assert not [e for e in c.events if e.name == "CHANNEL_EXECUTE"]


def test_unregistered_agent_fails_the_bridge(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_HANGUP CHANNEL_EXECUTE_COMPLETE")
    sim.set_registered("1000", False)
    call = sim.place_call("1001", "1000")
    assert call.b_uuid is None
    hangup = c.wait_event(named("CHANNEL_HANGUP", call.a_uuid))
    assert hangup["Hangup-Cause"] == "USER_NOT_REGISTERED"
    c.wait_event(app_done("bridge", call.a_uuid))


def test_ringing_agent_answers_later(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_PROGRESS CHANNEL_ANSWER CHANNEL_BRIDGE")
    sim.auto_answer = False
    call = sim.place_call("1001", "1000")
    c.wait_event(named("CHANNEL_PROGRESS", call.b_uuid))
    assert sim.channel(call.b_uuid).answer_state == "ringing"
    sim.answer(call.b_uuid)
    c.wait_event(named("CHANNEL_BRIDGE", call.a_uuid))


@pytest.mark.parametrize("variables,mode", [
    ({}, "listen"),
    ({"eavesdrop_whisper_bleg": "true"}, "whisper"),
    ({"eavesdrop_whisper_aleg": "true"}, "customer_whisper"),
    ({"eavesdrop_whisper_aleg": "true", "eavesdrop_whisper_bleg": "true"}, "barge"),
])
def test_start_mode_follows_whisper_variables(sim: FreeSwitchSim, esl_client, variables: dict, mode: str) -> None:
    c = esl_client(events="CHANNEL_PARK")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    for name, value in variables.items():
        c.execute(sup, "set", f"{name}={value}", lock=True)
    c.execute(sup, "eavesdrop", call.b_uuid)
    assert sim.wait_for(lambda: sim.eavesdrop_mode(sup)) == mode
    assert sim.eavesdrop_target(sup) == call.b_uuid and sim.eavesdroppers(call.b_uuid) == [sup]


def test_bridge_variables_choose_what_the_supervisor_hears(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_PARK")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    c.execute(sup, "set", "eavesdrop_bridge_aleg=true")
    c.execute(sup, "eavesdrop", call.b_uuid)
    assert sim.wait_for(lambda: sim.supervisor_hears(sup)) == {call.b_uuid}
    c.eavesdrop_command(sup, "*")
    c.execute(sup, "unset", "eavesdrop_bridge_aleg")
    c.execute(sup, "set", "eavesdrop_bridge_bleg=true")
    c.execute(sup, "eavesdrop", call.b_uuid)
    assert sim.wait_for(lambda: sim.supervisor_hears(sup)) == {call.a_uuid}


def test_dtmf_disabled_reads_no_digits_but_eavesdrop_command_still_works(sim: FreeSwitchSim, esl_client) -> None:
    """eavesdrop_enable_dtmf=false: no DTMF event, no mode change; sendevent still switches (07)."""
    c = esl_client(events="CHANNEL_PARK DTMF")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    c.execute(sup, "set", "eavesdrop_enable_dtmf=false")
    c.execute(sup, "eavesdrop", call.b_uuid)
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "listen")
    sim.press(sup, "1")
    assert sim.eavesdrop_mode(sup) == "listen"
    c.eavesdrop_command(sup, "1")
    assert sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "customer_whisper")
    c.api("status")
    assert not [e for e in c.events if e.name == "DTMF"]


def test_dtmf_sources_and_durations(sim: FreeSwitchSim, esl_client) -> None:
    """RTP 2080 ms-units; SIP INFO is RECV_INFO then DTMF 'ENDPOINT'; uuid_recv_dtmf is 'APP';
    uuid_send_dtmf goes out to the phone and is never seen by eavesdrop."""
    c = esl_client(events="CHANNEL_PARK DTMF RECV_INFO")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    c.execute(sup, "eavesdrop", call.b_uuid)
    sim.press(sup, "2", source="RTP")
    sim.press(sup, "3", source="ENDPOINT")
    assert c.api(f"uuid_recv_dtmf {sup} 0") == f"+OK {sup} received DTMF 0.\n"
    assert c.api(f"uuid_send_dtmf {sup} 2") == f"+OK {sup} sent DTMF 2.\n"
    c.api("status")
    got = [(e.name, e.get("DTMF-Digit"), e.get("DTMF-Source"), e.get("DTMF-Duration")) for e in c.events[1:]]
    assert got == [("DTMF", "2", "RTP", "2080"), ("RECV_INFO", None, None, None), ("DTMF", "3", "ENDPOINT", "2000"),
                   ("DTMF", "0", "APP", "2000")]
    assert c.events[2].body == "Signal=3\r\nDuration=250\r\n"
    assert sim.eavesdrop_mode(sup) == "listen"


def test_star_ends_eavesdrop_and_the_parked_supervisor_runs_queued_apps(sim: FreeSwitchSim, esl_client) -> None:
    """'*' returns to park; a sendmsg sent during eavesdrop waits for it (eavesdrop parses no
    private events); then a playback tone and a hang-up run in order."""
    c = esl_client(events="CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE PLAYBACK_START MEDIA_BUG_STOP "
                          "CHANNEL_HANGUP DTMF")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    c.execute(sup, "eavesdrop", call.b_uuid)
    c.execute(sup, "playback", "tone_stream://%(500,0,480)")
    c.api("status")
    assert not [e for e in c.events if e.name == "PLAYBACK_START"]
    sim.press(sup, "*")
    done = c.wait_event(app_done("playback", sup))
    assert done["Application-Response"] == "FILE PLAYED"
    order = [(e.name, e.get("Application")) for e in c.events if e.get("Unique-ID") in (sup, call.b_uuid)]
    assert order[-6:] == [("DTMF", None), ("MEDIA_BUG_STOP", None), ("CHANNEL_EXECUTE_COMPLETE", "eavesdrop"),
                          ("CHANNEL_EXECUTE", "playback"), ("PLAYBACK_START", None),
                          ("CHANNEL_EXECUTE_COMPLETE", "playback")]
    assert sim.channel(sup).parked
    c.sendmsg(sup, call_command="hangup", hangup_cause="CALL_REJECTED")
    hangup = c.wait_event(named("CHANNEL_HANGUP", sup))
    assert hangup["Hangup-Cause"] == "CALL_REJECTED"


def test_delayed_playback_completes_later(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE PLAYBACK_STOP")
    sim.playback_seconds = 0.05
    sup = parked(sim, c)
    c.execute(sup, "playback", "tone_stream://%(200,100,320);loops=2")
    stop = c.wait_event(named("PLAYBACK_STOP", sup))
    assert stop["Playback-Status"] == "done"
    assert c.wait_event(app_done("playback", sup))["Application-Response"] == "FILE PLAYED"


@pytest.mark.parametrize("lock", [False, True], ids=["no event-lock", "event-lock"])
def test_a_hangup_queued_behind_a_playback_cuts_it_unless_the_playback_has_the_event_lock(
        sim: FreeSwitchSim, esl_client, lock: bool) -> None:
    """switch_ivr_play_file parses the channel's queued sendmsg on every frame it plays: a hangup
    sent right after the playback runs from inside it and the tone is cut (the phone hears none of
    it). With event-lock on the playback's sendmsg the hangup waits until the tone has played."""
    c = esl_client(events="CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE PLAYBACK_STOP CHANNEL_HANGUP")
    # without the lock the hangup cuts the tone at once, however long it is; with it, it waits for the end
    sim.playback_seconds = 0.05 if lock else 60
    sup = parked(sim, c)
    start = len(c.events)
    c.execute(sup, "playback", "tone_stream://%(200,100,480,620);loops=3", lock=lock)
    c.sendmsg(sup, call_command="hangup", hangup_cause="CALL_REJECTED")
    c.wait_event(app_done("playback", sup))
    c.wait_event(named("CHANNEL_HANGUP", sup))
    got = [(e.name, e.get("Playback-Status") or e.get("Application-Response") or e.get("Hangup-Cause"))
           for e in c.events[start:] if e.get("Unique-ID") == sup]
    if lock:  # (then park returns too)
        assert got[:3] == [("PLAYBACK_STOP", "done"), ("CHANNEL_EXECUTE_COMPLETE", "FILE PLAYED"),
                           ("CHANNEL_HANGUP", "CALL_REJECTED")]
    else:
        assert got[:3] == [("CHANNEL_HANGUP", "CALL_REJECTED"), ("PLAYBACK_STOP", "break"),
                           ("CHANNEL_EXECUTE_COMPLETE", "PLAYBACK ERROR")]


def test_several_supervisors_on_one_agent_and_the_agent_hangs_up(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_PARK MEDIA_BUG_START MEDIA_BUG_STOP CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP")
    call = sim.place_call("1001", "1000")
    s1 = parked(sim, c, "1002")
    s2 = parked(sim, c, "1003")
    c.execute(s1, "eavesdrop", call.b_uuid)
    c.execute(s2, "three_way", call.b_uuid)
    sim.wait_for(lambda: len(sim.eavesdroppers(call.b_uuid)) == 2)
    assert sim.eavesdrop_mode(s1) == "listen" and sim.eavesdrop_mode(s2) == "barge"
    sim.hangup(call.b_uuid)
    c.wait_event(named("CHANNEL_HANGUP", call.a_uuid))
    c.wait_event(app_done("eavesdrop", s1))
    c.wait_event(app_done("three_way", s2))
    stops = [e for e in c.events if e.name == "MEDIA_BUG_STOP"]
    assert len(stops) == 2 and {e["Media-Bug-Target"] for e in stops} == {call.b_uuid}
    assert sim.channel(s1).parked and sim.channel(s2).parked and sim.eavesdroppers(call.b_uuid) == []


def test_customer_hangs_up_during_eavesdrop(sim: FreeSwitchSim, esl_client) -> None:
    """Both call legs go; the bug on the agent leg stops before the supervisor's EXECUTE_COMPLETE."""
    c = esl_client(events="CHANNEL_PARK CHANNEL_HANGUP MEDIA_BUG_STOP CHANNEL_EXECUTE_COMPLETE CHANNEL_DESTROY")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    c.execute(sup, "eavesdrop", call.b_uuid)
    sim.hangup(call.a_uuid)
    c.wait_event(named("CHANNEL_DESTROY", call.a_uuid))
    seq = [(e.name, e["Unique-ID"]) for e in c.events if e.name in ("CHANNEL_HANGUP", "MEDIA_BUG_STOP")
           or e.get("Application") == "eavesdrop"]
    assert seq[:4] == [("CHANNEL_HANGUP", call.a_uuid), ("CHANNEL_HANGUP", call.b_uuid),
                       ("MEDIA_BUG_STOP", call.b_uuid), ("CHANNEL_EXECUTE_COMPLETE", sup)]
    assert sim.channel(sup).parked and sim.channel(call.a_uuid) is None


def test_show_channels_keeps_the_last_application_like_the_core_db(sim: FreeSwitchSim, esl_client) -> None:
    """The 'application' column is written on CHANNEL_EXECUTE only: after '*' it still says eavesdrop."""
    c = esl_client(events="CHANNEL_PARK")
    call = sim.place_call("1001", "1000")
    sup = parked(sim, c)
    row = lambda: next(r for r in json.loads(c.api("show channels as json"))["rows"] if r["uuid"] == sup)  # noqa: E731
    assert row()["application"] == "park" and row()["call_uuid"] == ""
    c.execute(sup, "eavesdrop", call.b_uuid)
    assert row()["application"] == "eavesdrop" and row()["read_codec"] == "L16"
    c.eavesdrop_command(sup, "*")
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) is None)
    assert row()["application"] == "eavesdrop" and row()["read_codec"] == "PCMU"


def test_waiters_time_out(sim: FreeSwitchSim) -> None:
    with pytest.raises(TimeoutError):
        sim.wait_for(lambda: False, timeout=0.05)
    with pytest.raises(TimeoutError):
        sim.wait_for_event("CHANNEL_PARK", timeout=0.05)
    sim.dial("1002", "*331000")
    assert sim.wait_for_event("CHANNEL_PARK").get("variable_fsbarge_target") == "1000"
