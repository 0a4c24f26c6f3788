"""The simulator replays the captured scenarios the way the real FreeSWITCH 1.11.1 did.

For each scenario the test drives the simulator like the capture's driver did (the *33 park
hand-off instead of *44; the daemon's sendmsg/sendevent played by this test over TCP), reads the
events from a raw 'event plain ALL' socket, and compares with events-plain.raw: the sequence of
(event, leg, application) for the events a daemon subscribes to, and for every pair the headers
the daemon reads. The capture reader here is independent of fsbarge.
"""

from __future__ import annotations

import re


from fsbarge.sim import FreeSwitchSim
from tests.captures import captures_dir
from tests.sim_fixtures import EslClient, PlainEvent, named, parse_plain, sim, split_frames  # noqa: F401

# Missing captures skip this module under one summary line, and fail it in CI (tests.captures).
CAPTURES = captures_dir()

DAEMON_EVENTS = {
    "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_PARK",
    "CHANNEL_UNPARK", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY", "DTMF", "MEDIA_BUG_START", "MEDIA_BUG_STOP",
}
DIALPLAN_SPECIFIC_APPS = {"set", "export", "hash", "unset"}

# Headers the daemon reads, and how a simulated value must resemble the captured one.
EXACT = {
    "Event-Name", "Channel-State", "Channel-Call-State", "Answer-State", "Call-Direction", "Channel-Name",
    "Channel-Presence-ID", "Caller-Username", "Caller-Caller-ID-Name", "Caller-Caller-ID-Number",
    "Other-Type", "Other-Leg-Caller-ID-Number", "Hangup-Cause", "Application", "Application-Response",
    "Media-Bug-Function", "DTMF-Digit", "DTMF-Duration", "DTMF-Source", "variable_user_name",
    "variable_dialed_user", "variable_presence_id", "variable_sip_authorized",
    "variable_eavesdrop_enable_dtmf", "variable_hangup_cause", "variable_current_application",
    "Channel-Read-Codec-Name",
}
ROLE = {
    "Unique-ID", "Channel-Call-UUID", "Other-Leg-Unique-ID", "Bridge-A-Unique-ID", "Bridge-B-Unique-ID",
    "Media-Bug-Target", "variable_call_uuid", "variable_signal_bond", "variable_bridge_uuid",
    "variable_originator",
}
SHAPE = {
    "Core-UUID", "Event-Date-Timestamp", "Event-Sequence", "Caller-Channel-Created-Time",
    "Caller-Channel-Answered-Time", "Caller-Channel-Hangup-Time", "Application-UUID", "Application-Data",
    "Caller-Destination-Number", "Caller-Callee-ID-Name", "Caller-Callee-ID-Number",
}
DAEMON_HEADERS = EXACT | ROLE | SHAPE
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# -- the capture side ---------------------------------------------------------------------------
def load_events(scenario: str) -> list[PlainEvent]:
    frames, rest = split_frames((CAPTURES / scenario / "events-plain.raw").read_bytes())
    assert not rest
    return [parse_plain(f.body) for f in frames if f.content_type == "text/event-plain"]


def timeline_ids(scenario: str) -> dict[str, str]:
    """The '# ids' section of timeline.txt: 'name: uuid' lines."""
    ids = {}
    text = (CAPTURES / scenario / "timeline.txt").read_text()
    for line in text.split("# ids", 1)[1].splitlines():
        key, sep, value = line.partition(": ")
        if sep and UUID.fullmatch(value.strip()):
            ids[key.strip()] = value.strip()
    return ids


# -- comparison ---------------------------------------------------------------------------------
def role_of(value: str, roles: dict[str, str]) -> str:
    return roles.get(value, "uuid" if UUID.fullmatch(value) else f"?{value}")


def shape(value: str) -> str:
    if UUID.fullmatch(value):
        return "uuid"
    if value.isdigit():
        return "zero" if int(value) == 0 else "number"
    return "text" if value else "empty"


def kind(header: str, value: str, event: PlainEvent, roles: dict[str, str]) -> str:
    if header in ROLE:
        return role_of(value, roles)
    if header == "Application-Data" and event.get("Application") in ("eavesdrop", "three_way"):
        return role_of(value, roles)
    if header in EXACT:
        return value
    if header in ("Caller-Callee-ID-Name", "Caller-Callee-ID-Number"):
        return "present"  # the capture's phones answered as 'agent_phone'
    return shape(value)


def key(event: PlainEvent, roles: dict[str, str]) -> tuple[str, str, str]:
    app = event.get("Application", "") if event.name.startswith("CHANNEL_EXECUTE") else ""
    return event.name, roles[event["Unique-ID"]], app


def daemon_view(events: list[PlainEvent], roles: dict[str, str], names: set[str] = DAEMON_EVENTS,
                start: PlainEvent | None = None, end: PlainEvent | None = None) -> list[PlainEvent]:
    """The events a daemon subscribed to, for the legs of interest, minus dialplan bookkeeping."""
    out = []
    active = start is None
    for ev in events:
        if ev is start:
            active = True
        if active and ev.name in names and ev.get("Unique-ID") in roles:
            if not (ev.name.startswith("CHANNEL_EXECUTE") and ev.get("Application") in DIALPLAN_SPECIFIC_APPS):
                out.append(ev)
        if ev is end:
            break
    return out


def assert_same(captured: list[PlainEvent], cap_roles: dict[str, str],
                simulated: list[PlainEvent], sim_roles: dict[str, str]) -> None:
    cap_keys = [key(e, cap_roles) for e in captured]
    sim_keys = [key(e, sim_roles) for e in simulated]
    assert sim_keys == cap_keys
    for i, (ce, se) in enumerate(zip(captured, simulated)):
        for header in sorted(DAEMON_HEADERS):
            if header not in ce:
                continue
            assert header in se, f"#{i} {cap_keys[i]}: simulator lacks {header}"
            want = kind(header, ce[header], ce, cap_roles)
            got = kind(header, se[header], se, sim_roles)
            assert got == want, f"#{i} {cap_keys[i]} {header}: {se[header]!r} ({got}) vs captured {ce[header]!r} ({want})"
        if ce.name == "DTMF":
            assert not [k for k, _ in se.headers if k.startswith("variable_")]


# -- driving the simulator ------------------------------------------------------------------
def connect(sim: FreeSwitchSim, events: str) -> EslClient:
    client = EslClient(sim.host, sim.port)
    client.auth()
    client.command(f"event plain {events}")
    return client


def feature_code_call(sim: FreeSwitchSim, ctl: EslClient, dest: str = "*331000") -> tuple[object, str]:
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", dest)
    ctl.wait_event(named("CHANNEL_PARK", sup))
    return call, sup


def test_03_park_handoff_sendmsg_eavesdrop_modes_and_hangups(sim: FreeSwitchSim) -> None:
    """03: park hand-off, sendmsg eavesdrop, eavesdrop-command/DTMF mode switching, whisper
    start variables, three_way, supervisor then customer hang up."""
    mon, ctl = connect(sim, "ALL"), connect(sim, "CHANNEL_PARK")
    call, sup = feature_code_call(sim, ctl)
    agent = call.b_uuid
    mode = lambda: sim.eavesdrop_mode(sup)  # noqa: E731

    ctl.execute(sup, "set", "eavesdrop_enable_dtmf=true", lock=True)
    ctl.execute(sup, "eavesdrop", agent)
    assert sim.wait_for(lambda: mode() == "listen")
    for digits, expected in (("2", "whisper"), ("1", "customer_whisper"), ("3", "barge"), ("0", "listen")):
        if digits == "1":
            sim.press(sup, "1", source="RTP")
        else:
            ctl.eavesdrop_command(sup, digits)
        assert sim.wait_for(lambda: mode() == expected)
    ctl.eavesdrop_command(sup, "*")
    sim.wait_for(lambda: mode() is None)

    ctl.execute(sup, "set", "eavesdrop_whisper_aleg=true", lock=True)
    ctl.execute(sup, "eavesdrop", agent)
    assert sim.wait_for(lambda: mode() == "customer_whisper")
    ctl.eavesdrop_command(sup, "*")
    ctl.execute(sup, "unset", "eavesdrop_whisper_aleg", lock=True)
    ctl.execute(sup, "set", "eavesdrop_whisper_bleg=true", lock=True)
    ctl.execute(sup, "eavesdrop", agent)
    assert sim.wait_for(lambda: mode() == "whisper")
    ctl.eavesdrop_command(sup, "*")
    ctl.execute(sup, "unset", "eavesdrop_whisper_bleg", lock=True)
    ctl.execute(sup, "three_way", agent)
    assert sim.wait_for(lambda: mode() == "barge")
    sim.press(sup, "0")  # three_way reads no DTMF
    assert mode() == "barge"
    ctl.eavesdrop_command(sup, "*")
    sim.wait_for(lambda: mode() is None)
    sim.hangup(sup)
    sim.hangup(call.a_uuid)
    mon.wait_event(named("CHANNEL_DESTROY", call.a_uuid))

    ids = timeline_ids("03-barge-esl-park-sendmsg")
    cap_roles = {ids["pbx_customer_leg_uuid"]: "customer", ids["pbx_agent_leg_uuid"]: "agent",
                 ids["pbx_supervisor_leg_uuid"]: "supervisor"}
    sim_roles = {call.a_uuid: "customer", agent: "agent", sup: "supervisor"}
    captured = daemon_view(load_events("03-barge-esl-park-sendmsg"), cap_roles)
    assert_same(captured, cap_roles, daemon_view(mon.events, sim_roles), sim_roles)


def test_05_agent_hangs_up_while_eavesdropped(sim: FreeSwitchSim) -> None:
    """05 (2): the agent hangs up during a park barge; the customer follows by hangup_after_bridge,
    the supervisor's eavesdrop returns and it stays parked until it hangs up."""
    mon, ctl = connect(sim, "ALL"), connect(sim, "CHANNEL_PARK")
    call, sup = feature_code_call(sim, ctl)
    ctl.execute(sup, "set", "eavesdrop_enable_dtmf=true", lock=True)
    ctl.execute(sup, "eavesdrop", call.b_uuid)
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "listen")
    sim.hangup(call.b_uuid)
    mon.wait_event(named("CHANNEL_DESTROY", call.a_uuid))
    assert sim.eavesdrop_mode(sup) is None
    assert sim.channel(sup) is not None and sim.channel(sup).parked
    sim.hangup(sup)
    mon.wait_event(named("CHANNEL_DESTROY", sup))

    ids = timeline_ids("05-agent-hangs-up-during-eavesdrop")
    cap_roles = {ids["pbx_customer_leg_uuid"]: "customer", ids["pbx_agent_leg_uuid"]: "agent",
                 ids["pbx_supervisor_leg_uuid"]: "supervisor"}
    sim_roles = {call.a_uuid: "customer", call.b_uuid: "agent", sup: "supervisor"}
    captured = daemon_view(load_events("05-agent-hangs-up-during-eavesdrop"), cap_roles)
    assert_same(captured, cap_roles, daemon_view(mon.events, sim_roles), sim_roles)


def test_04_eavesdrop_on_missing_uuid_via_sendmsg_then_sendmsg_hangup(sim: FreeSwitchSim) -> None:
    """04 (2): EXECUTE and EXECUTE_COMPLETE at once, no media bug, back to park; sendmsg hangup."""
    mon, ctl = connect(sim, "ALL"), connect(sim, "CHANNEL_PARK")
    sup = sim.dial("1002", "*331000")
    ctl.wait_event(named("CHANNEL_PARK", sup))
    bogus = "e16b9abc-ad94-46ef-9a9e-da1a1fbba2a5"
    ctl.execute(sup, "set", "eavesdrop_enable_dtmf=true", lock=True)
    ctl.execute(sup, "eavesdrop", bogus)
    done = mon.wait_event(named("CHANNEL_EXECUTE_COMPLETE", sup), start=0)
    while done.get("Application") != "eavesdrop":
        done = mon.wait_event(lambda e: e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == "eavesdrop")
    assert sim.channel(sup).parked
    ctl.sendmsg(sup, call_command="hangup", hangup_cause="NORMAL_CLEARING")
    mon.wait_event(named("CHANNEL_DESTROY", sup))
    assert not [e for e in mon.events if e.name.startswith("MEDIA_BUG")]

    ids = timeline_ids("04-eavesdrop-nonexistent-uuid")
    cap_roles = {ids["pbx_supervisor_leg_uuid"]: "supervisor", ids["bogus_uuid_esl"]: "bogus"}
    sim_roles = {sup: "supervisor", bogus: "bogus"}
    captured = daemon_view(load_events("04-eavesdrop-nonexistent-uuid"), cap_roles)
    assert_same(captured, cap_roles, daemon_view(mon.events, sim_roles), sim_roles)


def test_04_dialplan_eavesdrop_on_missing_uuid_then_playback_and_hangup(sim: FreeSwitchSim) -> None:
    """04 (1) with the capture's own *34 extension: eavesdrop returns at once, the dialplan goes
    on with playback (PLAYBACK_START/STOP, 'FILE PLAYED') and hangup."""
    mon = connect(sim, "ALL")
    sim.add_extension(r"\*34(.+)", [("answer", ""), ("set", "eavesdrop_enable_dtmf=true"), ("eavesdrop", "$1"),
                                    ("playback", "tone_stream://%(200,100,320);loops=2"),
                                    ("hangup", "NORMAL_CLEARING")])
    bogus = "b87e3b4d-6411-405d-ade0-35751114036f"
    sup = sim.dial("1002", f"*34{bogus}")
    mon.wait_event(named("CHANNEL_DESTROY", sup))

    names = DAEMON_EVENTS | {"PLAYBACK_START", "PLAYBACK_STOP"}
    events = load_events("04-eavesdrop-nonexistent-uuid")
    first_sup = next(e["Unique-ID"] for e in events if e.name == "CHANNEL_CREATE")
    cap_roles = {first_sup: "supervisor", bogus: "bogus"}
    sim_roles = {sup: "supervisor", bogus: "bogus"}
    captured = daemon_view(events, cap_roles, names)
    simulated = daemon_view(mon.events, sim_roles, names)
    assert_same(captured, cap_roles, simulated, sim_roles)
    stop = next(e for e in simulated if e.name == "PLAYBACK_STOP")
    assert stop["Playback-File-Path"] == "tone_stream://%(200,100,320);loops=2"
    assert b"Playback-File-Path: tone_stream%3A//%25(200,100,320)%3Bloops%3D2\n" in stop.raw


def test_02_dtmf_2_1_3_0_then_supervisor_hangs_up(sim: FreeSwitchSim) -> None:
    """02: each RFC2833 digit read by eavesdrop is one DTMF event (no variables) switching the mode;
    the supervisor's BYE ends eavesdrop with MEDIA_BUG_STOP before EXECUTE_COMPLETE."""
    mon, ctl = connect(sim, "ALL"), connect(sim, "CHANNEL_PARK")
    call, sup = feature_code_call(sim, ctl)
    ctl.execute(sup, "set", "eavesdrop_enable_dtmf=true", lock=True)
    ctl.execute(sup, "eavesdrop", call.b_uuid)
    hears = {"2": {call.b_uuid}, "1": {call.a_uuid}, "3": {call.a_uuid, call.b_uuid}, "0": set()}
    for digit, mode in (("2", "whisper"), ("1", "customer_whisper"), ("3", "barge"), ("0", "listen")):
        sim.press(sup, digit)
        assert sim.wait_for(lambda: sim.eavesdrop_mode(sup) == mode)
        assert sim.hears_supervisor(sup) == hears[digit]
    assert sim.supervisor_hears(sup) == {call.a_uuid, call.b_uuid}
    sim.hangup(sup)
    mon.wait_event(named("CHANNEL_DESTROY", sup))

    ids = timeline_ids("02-barge-dialplan-dtmf")
    cap_roles = {ids["pbx_customer_leg_uuid"]: "customer", ids["pbx_agent_leg_uuid"]: "agent",
                 ids["pbx_supervisor_leg_uuid"]: "supervisor"}
    sim_roles = {call.a_uuid: "customer", call.b_uuid: "agent", sup: "supervisor"}

    def section(events: list[PlainEvent], roles: dict[str, str]) -> list[PlainEvent]:
        sup_uuid = next(u for u, r in roles.items() if r == "supervisor")
        start = next(e for e in events if e.name == "CHANNEL_EXECUTE" and e.get("Application") == "eavesdrop")
        end = next(e for e in events if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == "eavesdrop"
                   and e.get("Unique-ID") == sup_uuid)
        return daemon_view(events, roles, start=start, end=end)

    captured = section(load_events("02-barge-dialplan-dtmf"), cap_roles)
    simulated = section(mon.events, sim_roles)
    assert [e["DTMF-Digit"] for e in simulated if e.name == "DTMF"] == ["2", "1", "3", "0"]
    assert_same(captured, cap_roles, simulated, sim_roles)


def test_show_channels_rows_match_captured_columns_and_encoding(sim: FreeSwitchSim) -> None:
    """'show channels as json' while eavesdropping: same columns in the same order as the capture,
    the agent leg's '+' kept escaped, the supervisor row naming eavesdrop and its target."""
    import json

    ctl = connect(sim, "CHANNEL_PARK")
    call, sup = feature_code_call(sim, ctl)
    ctl.execute(sup, "eavesdrop", call.b_uuid)
    body = ctl.api("show channels as json")
    captured = json.loads((CAPTURES / "03-barge-esl-park-sendmsg" / "show_channels_as_json_eavesdropping.json").read_text())
    got = json.loads(body)
    assert not body.endswith("\n") and ", " not in body[:20]
    assert got["row_count"] == 3 == captured["row_count"]
    assert [list(r) for r in got["rows"]] == [list(r) for r in captured["rows"]]
    rows = {r["uuid"]: r for r in got["rows"]}
    cap = {r["name"]: r for r in captured["rows"]}
    for uuid, role_name in ((call.a_uuid, "sofia/internal/1001@127.0.0.1"),
                            (call.b_uuid, "sofia/internal/gw%2B1000@127.0.0.1:5070"),
                            (sup, "sofia/internal/1002@127.0.0.1")):
        row, crow = rows[uuid], cap[role_name]
        assert row["name"] == crow["name"]
        for col in ("direction", "state", "ip_addr", "presence_id", "callstate", "read_codec", "write_codec",
                    "callee_direction", "dialplan", "context"):
            assert row[col] == crow[col], (role_name, col)
    assert rows[call.b_uuid]["dest"] == "gw%2B1000"
    assert rows[sup]["application"] == "eavesdrop" and rows[sup]["application_data"] == call.b_uuid
    assert rows[sup]["call_uuid"] == "" and rows[call.b_uuid]["call_uuid"] == call.a_uuid
    assert rows[sup]["sent_callee_name"] == "Customer 1001" and rows[sup]["sent_callee_num"] == "1001"


def test_heartbeat_has_the_captured_headers_and_freeswitchs_20_second_interval() -> None:
    """FreeSWITCH fires HEARTBEAT every 20 s (every capture spanning two shows exactly that, and the
    RE_SCHEDULE of its 'heartbeat' task says the same); the simulator's carries the captured headers
    in the captured order, and its standalone default (``python -m fsbarge.sim``) is 20 s."""
    from fsbarge.sim.simulator import HEARTBEAT_SECONDS

    captured: list[PlainEvent] = []
    for scenario in sorted(p.name for p in CAPTURES.iterdir() if (p / "events-plain.raw").is_file()):
        beats = [e for e in load_events(scenario) if e.name == "HEARTBEAT"]
        stamps = [int(e["Event-Date-Timestamp"]) for e in beats]
        assert all(round((b - a) / 1e6) == 20 for a, b in zip(stamps, stamps[1:])), scenario
        captured += beats
    assert len(captured) >= 2 and HEARTBEAT_SECONDS == 20.0
    with FreeSwitchSim(heartbeat_interval=0.01) as sim:
        client = connect(sim, "HEARTBEAT")
        simulated = client.wait_event(named("HEARTBEAT"))
        client.close()
    assert [k for k, _ in simulated.headers] == [k for k, _ in captured[0].headers]
    assert simulated["Event-Calling-Function"] == captured[0]["Event-Calling-Function"] == "send_heartbeat"
    assert simulated["Event-Info"] == captured[0]["Event-Info"] == "System Ready"
