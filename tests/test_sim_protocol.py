"""The simulator speaks mod_event_socket's wire protocol byte for byte where the captures show it."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from fsbarge.sim.wire import CommandReader, url_encode
from tests.e2e import WAIT
from tests.sim_fixtures import EslClient, esl_client, named, sim, split_frames  # noqa: F401
from tests.captures import captures  # noqa: F401  (fixture)

GOODBYE = b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def test_auth_request_then_accepted(sim: FreeSwitchSim) -> None:
    """A new connection is greeted with auth/request; the right password is '+OK accepted'."""
    c = EslClient(sim.host, sim.port)
    reply = c.auth("ClueCon")
    assert c.raw.startswith(b"Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n")
    assert reply.headers == {"Content-Type": "command/reply", "Reply-Text": "+OK accepted"}


def test_wrong_password_is_refused_with_a_disconnect_notice(sim: FreeSwitchSim) -> None:
    """'-ERR invalid', the goodbye notice, then the socket closes (listener_run's 'done:')."""
    c = EslClient(sim.host, sim.port)
    assert c.auth("wrong").headers["Reply-Text"] == "-ERR invalid"
    raw = c.wait_closed()
    assert raw.endswith(b"Reply-Text: -ERR invalid\n\n" + GOODBYE)


def test_commands_before_auth_are_not_found_and_the_connection_stays(sim: FreeSwitchSim) -> None:
    c = EslClient(sim.host, sim.port)
    assert c.read_frame().content_type == "auth/request"
    assert c.command("api status").headers["Reply-Text"] == "-ERR command not found"
    assert c.command("event plain ALL").headers["Reply-Text"] == "-ERR command not found"
    assert c.command("auth ClueCon").headers["Reply-Text"] == "+OK accepted"


def test_only_subscribed_events_are_sent(sim: FreeSwitchSim, esl_client) -> None:
    """'event plain CHANNEL_PARK' delivers CHANNEL_PARK and nothing else; a second 'event' adds."""
    c = esl_client(events="CHANNEL_PARK")
    sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*331000")
    c.api("status")  # every event fired before the reply has been read by now
    assert [e.name for e in c.events] == ["CHANNEL_PARK"]
    assert c.events[0]["Unique-ID"] == sup
    assert c.command("event plain CHANNEL_HANGUP").headers["Reply-Text"] == "+OK event listener enabled plain"
    sim.hangup(sup)
    c.api("status")
    assert [e.name for e in c.events] == ["CHANNEL_PARK", "CHANNEL_HANGUP"]


def test_event_keywords_unknown_names_and_noevents(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events=None)
    assert c.command("event plain NOT_AN_EVENT").headers["Reply-Text"] == "-ERR no keywords supplied"
    assert c.command("event plain channel_create").headers["Reply-Text"] == "+OK event listener enabled plain"
    sim.dial("1002", "*331000")
    c.wait_event(named("CHANNEL_CREATE"))
    assert c.command("noevents").headers["Reply-Text"] == "+OK no longer listening for events"
    assert c.command("noevents").headers["Reply-Text"] == "-ERR not listening for events"
    before = len(c.events)
    sim.dial("1001", "*331000")
    c.api("status")
    assert len(c.events) == before


def test_custom_subclasses_and_unqueued_sendevent_are_fired(sim: FreeSwitchSim, esl_client) -> None:
    """'CUSTOM a::b' subscribes to that subclass only; sendevent to no live channel is fired."""
    listener = esl_client(events="CUSTOM supervisor::barge")
    sender = esl_client(events=None)
    reply = sender.command("sendevent CUSTOM\nEvent-Subclass: other::thing\nfoo: bar")
    assert reply.headers["Reply-Text"].startswith("+OK ")
    sender.command("sendevent CUSTOM\nEvent-Subclass: supervisor::barge\nfoo: bar baz")
    ev = listener.wait_event(named("CUSTOM"))
    assert ev["Event-Subclass"] == "supervisor::barge" and ev["foo"] == "bar baz"
    assert ev.headers[0] == ("Command", "sendevent CUSTOM")
    listener.api("status")
    assert len([e for e in listener.events if e.name == "CUSTOM"]) == 1


def test_json_format(sim: FreeSwitchSim, esl_client) -> None:
    """'event json' bodies are one JSON object, values not URL-encoded, no trailing newline."""
    c = esl_client(events=None)
    assert c.command("event json CHANNEL_CREATE").headers["Reply-Text"] == "+OK event listener enabled json"
    call = sim.place_call("1001", "1000")
    c.api("status")
    assert len(c.json_events) == 2 and not c.json_events[0].endswith(b"\n")
    assert b"\nContent-Type: text/event-json\n\n{" in c.raw
    b_leg = json.loads(c.json_events[1])
    assert b_leg["Unique-ID"] == call.b_uuid
    assert b_leg["Channel-Name"] == "sofia/internal/gw%2B1000@127.0.0.1:5070"  # raw, as FreeSWITCH keeps it
    assert b_leg["Event-Date-GMT"].endswith(" GMT")


def test_event_plain_framing_and_url_encoding(sim: FreeSwitchSim, esl_client) -> None:
    """Outer Content-Length counts the body; values are encoded like switch_url_encode."""
    c = esl_client(events="CHANNEL_CREATE")
    call = sim.place_call("1001", "1000")
    ev = c.wait_event(named("CHANNEL_CREATE", call.b_uuid))
    frames, _ = split_frames(c.raw)
    frame = [f for f in frames if f.content_type == "text/event-plain"][-1]
    assert int(frame.headers["Content-Length"]) == len(frame.body) == len(ev.raw)
    raw = ev.raw.decode()
    assert "\nChannel-Name: sofia/internal/gw%2B1000%40127.0.0.1%3A5070\n" in raw
    assert "\nChannel-Presence-ID: 1000%40127.0.0.1\n" in raw
    assert "\nEvent-Date-GMT: " in raw and "%20GMT\n" in raw
    assert raw.endswith("\n\n") and raw.startswith("Event-Name: CHANNEL_CREATE\n")
    assert ev["variable_signal_bond"] == call.a_uuid and ev["Channel-Call-UUID"] == call.a_uuid


@pytest.mark.parametrize("scenario", ["03-barge-esl-park-sendmsg", "07-dtmf-delivery-variants"])
def test_url_encoding_reproduces_every_captured_value(scenario: str, captures: Path) -> None:  # noqa: F811
    """url_encode(decoded value) gives back the captured bytes for every header FreeSWITCH sent."""
    from tests.test_sim_fidelity import load_events  # reads the captures on import

    seen = 0
    for ev in load_events(scenario):
        for line in ev.raw.decode().partition("\n\n")[0].split("\n"):
            name, _, value = line.partition(": ")
            assert url_encode(urllib.parse.unquote(value)) == value, (name, value)
            seen += 1
    assert seen > 10000


def test_url_encode_table() -> None:
    assert url_encode("sofia/internal/gw+1000@127.0.0.1:5070") == "sofia/internal/gw%2B1000%40127.0.0.1%3A5070"
    assert url_encode("a b;c=d,e~*") == "a%20b%3Bc%3Dd,e~*"
    assert url_encode("100%") == "100%25" and url_encode("%2B") == "%2B"  # no double encoding
    assert url_encode("x\ny") == "x%0Ay" and url_encode("José") == "Jos%C3%A9"


def test_api_status_and_empty_show_channels(sim: FreeSwitchSim, esl_client) -> None:
    """'show channels as json' with no rows is exactly '{"row_count": 0}\\n' (with the space)."""
    c = esl_client(events=None)
    c.send("api show channels as json\n\n")
    frame = c.read_frame()
    assert frame.headers == {"Content-Type": "api/response", "Content-Length": "17"}
    assert frame.body == b'{"row_count": 0}\n'
    status = c.api("status").splitlines()
    assert status[0].startswith("UP 0 years, 0 days") and status[1] == "FreeSWITCH (Version 1.11.1-release  64bit) is ready"
    assert status[2] == "0 session(s) since startup" and status[-1] == "Current Stack Size/Max 240K/8192K"
    assert c.api("show calls as json") == '{"row_count": 0}\n'
    assert c.api("version") == "FreeSWITCH Version 1.11.1-release~64bit ( 64bit)\n"


def test_show_channels_with_a_bridged_call_matches_the_captured_shape(sim: FreeSwitchSim, esl_client, captures: Path) -> None:  # noqa: F811
    c = esl_client(events=None)
    call = sim.place_call("1001", "1000")
    body = c.api("show channels as json")
    captured = json.loads((captures / "02-barge-dialplan-dtmf" / "show_channels_as_json_bridged.json").read_text())
    got = json.loads(body)
    assert [list(r) for r in got["rows"]] == [list(r) for r in captured["rows"]]
    assert [r["uuid"] for r in got["rows"]] == [call.a_uuid, call.b_uuid]
    assert got["rows"][0]["application"] == "bridge" and got["rows"][0]["application_data"] == "user/1000@127.0.0.1"
    assert got["rows"][1]["presence_id"] == "1000@127.0.0.1" and got["rows"][1]["name"].startswith("sofia/internal/gw%2B1000@")
    calls = json.loads(c.api("show calls as json"))
    cap_calls = json.loads((captures / "02-barge-dialplan-dtmf" / "show_calls_as_json_bridged.json").read_text())
    assert list(calls["rows"][0]) == list(cap_calls["rows"][0]) and calls["rows"][0]["b_uuid"] == call.b_uuid


def test_uuid_commands_and_unknown_command(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_HANGUP_COMPLETE")
    call = sim.place_call("1001", "1000")
    assert c.api(f"uuid_exists {call.b_uuid}") == "true"
    assert c.api("uuid_exists 00000000-0000-0000-0000-000000000000") == "false"
    assert c.api(f"uuid_getvar {call.b_uuid} dialed_user") == "1000"
    assert c.api(f"uuid_getvar {call.b_uuid} no_such_var") == "_undef_"
    assert c.api("uuid_getvar 00000000-0000-0000-0000-000000000000 x") == "-ERR No such channel!\n"
    assert c.api("bogus_cmd with args") == "-ERR bogus_cmd Command not found!\n"
    assert c.api(f"uuid_kill {call.b_uuid} USER_BUSY") == "+OK\n"
    done = c.wait_event(named("CHANNEL_HANGUP_COMPLETE", call.b_uuid))
    assert done["Hangup-Cause"] == "USER_BUSY" and done.all("Hangup-Cause") == ["USER_BUSY", "USER_BUSY"]
    c.wait_event(named("CHANNEL_HANGUP_COMPLETE", call.a_uuid))
    assert c.api(f"uuid_exists {call.a_uuid}") == "false"


def test_bgapi_replies_with_a_job_uuid_then_fires_background_job(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="BACKGROUND_JOB")
    reply = c.command("bgapi uuid_exists 00000000-0000-0000-0000-000000000000")
    job = reply.headers["Job-UUID"]
    assert reply.headers["Reply-Text"] == f"+OK Job-UUID: {job}"
    ev = c.wait_event(named("BACKGROUND_JOB"))
    assert ev["Job-UUID"] == job and ev["Job-Command"] == "uuid_exists" and ev.body == "false"
    assert ev["Job-Command-Arg"] == "00000000-0000-0000-0000-000000000000"
    assert b"\nContent-Length: 5\n\nfalse" in ev.raw
    reply = c.command("bgapi status\nJob-UUID: 11111111-2222-3333-4444-555555555555")
    assert reply.headers["Job-UUID"] == "11111111-2222-3333-4444-555555555555"


def test_sendmsg_reply_and_application_uuid_correlation(sim: FreeSwitchSim, esl_client) -> None:
    """sendmsg gets '+OK'; its Event-UUID comes back as Application-UUID; PRIVATE_COMMAND follows."""
    c = esl_client(events="CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE PRIVATE_COMMAND")
    sup = sim.dial("1002", "*341000")
    c.wait_event(named("CHANNEL_PARK", sup))
    mark = len(c.events)
    reply = c.execute(sup, "set", "eavesdrop_enable_dtmf=true", event_uuid="0882c5d3-04cf-4b58-b10b-632ed29a9738",
                      lock=True)
    assert reply.headers == {"Content-Type": "command/reply", "Reply-Text": "+OK"}
    pc = c.wait_event(named("PRIVATE_COMMAND"), start=mark)
    names = [(e.name, e.get("Application-UUID")) for e in c.events[mark:]]
    assert names == [("CHANNEL_EXECUTE", "0882c5d3-04cf-4b58-b10b-632ed29a9738"),
                     ("CHANNEL_EXECUTE_COMPLETE", "0882c5d3-04cf-4b58-b10b-632ed29a9738"),
                     ("PRIVATE_COMMAND", None)]
    assert pc.headers[:6] == [("Command", f"sendmsg {sup}"), ("call-command", "execute"),
                              ("execute-app-name", "set"), ("execute-app-arg", "eavesdrop_enable_dtmf=true"),
                              ("Event-UUID", "0882c5d3-04cf-4b58-b10b-632ed29a9738"), ("event-lock", "true")]
    assert c.events[mark + 1]["variable_eavesdrop_enable_dtmf"] == "true"
    assert c.events[mark + 1]["Application-Response"] == "_none_"
    bad = "ffffffff-0000-0000-0000-000000000000"
    assert c.execute(bad, "set", "x=1").headers["Reply-Text"] == f"-ERR invalid session id [{bad}]"


def test_sendevent_eavesdrop_command_switches_mode_and_is_not_fired(sim: FreeSwitchSim, esl_client) -> None:
    """sendevent to a live Unique-ID is queued to that channel: the running eavesdrop applies
    'eavesdrop-command' and listeners see no CUSTOM event."""
    watcher = esl_client(events="ALL")
    ctl = esl_client(events="CHANNEL_PARK")
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*331000")
    ctl.wait_event(named("CHANNEL_PARK", sup))
    ctl.execute(sup, "eavesdrop", call.b_uuid)
    for digit, mode in (("2", "whisper"), ("1", "customer_whisper"), ("3", "barge"), ("0", "listen")):
        reply = ctl.eavesdrop_command(sup, digit)
        assert reply.headers["Reply-Text"].startswith("+OK ") and len(reply.headers["Reply-Text"]) == 40
        assert sim.wait_for(lambda: sim.eavesdrop_mode(sup) == mode)
    ctl.eavesdrop_command(sup, "*")
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) is None)
    watcher.api("status")
    assert not [e for e in watcher.events if e.name in ("CUSTOM", "DTMF")]
    assert sim.channel(sup).parked


def test_exit_says_bye_then_disconnect_notice(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events=None)
    assert c.command("exit").headers["Reply-Text"] == "+OK bye"
    assert c.wait_closed().endswith(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n" + GOODBYE)


def test_crlf_commands_blank_lines_and_bodies(sim: FreeSwitchSim, esl_client) -> None:
    """read_packet tolerates CRLF and leading blank lines; sendmsg may carry the arg as a body."""
    c = esl_client(events="CHANNEL_EXECUTE_COMPLETE CHANNEL_PARK")
    c.send(b"\r\n\r\napi uuid_exists abc\r\n\r\n")
    assert c.read_frame().body == b"false"
    sup = sim.dial("1002", "*331000")
    c.wait_event(named("CHANNEL_PARK"))
    body = "fsbarge_note=a b"
    c.send(f"sendmsg {sup}\ncall-command: execute\nexecute-app-name: set\ncontent-type: text/plain\n"
           f"content-length: {len(body)}\n\n{body}")
    assert c.read_frame().headers["Reply-Text"] == "+OK"
    done = c.wait_event(lambda e: e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application-Data") == body)
    assert done["variable_fsbarge_note"] == "a b"


def test_command_reader_splits_like_read_packet() -> None:
    reader = CommandReader()
    cmds = reader.feed(b"\n\napi status\n\nsendmsg x\ncall-command: execute\nno colon line\nContent-Length: 3\n\nab")
    assert [c.line for c in cmds] == ["api status"]
    cmds = reader.feed(b"cevent plain ALL\r\n\r\n")
    assert [(c.line, c.body) for c in cmds] == [("sendmsg x", "abc"), ("event plain ALL", None)]
    assert cmds[0].headers == [("call-command", "execute"), ("Content-Length", "3")]


def test_filter_limits_events_to_one_channel(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events="CHANNEL_CREATE")
    call = sim.place_call("1001", "1000")
    assert c.command(f"filter Unique-ID {call.a_uuid}").headers["Reply-Text"] == f"+OK filter added. [Unique-ID]=[{call.a_uuid}]"
    mark = len(c.events)
    sim.place_call("1003", "1000")
    sim.dial("1002", "*331000")
    c.api("status")
    assert c.events[mark:] == []


def test_greenswitch_inbound_client_works_against_the_simulator(sim: FreeSwitchSim) -> None:
    """The daemon's ESL library connects, authenticates and runs api commands."""
    greenswitch = pytest.importorskip("greenswitch")
    fs = greenswitch.InboundESL(host=sim.host, port=sim.port, password="ClueCon")
    fs.connect()
    try:
        r = fs.send("api show channels as json")
        assert r.data == '{"row_count": 0}\n'
        assert r.headers["Content-Type"] == "api/response"
    finally:
        fs.stop()


def test_standalone_command_line_simulator() -> None:
    """python -m fsbarge.sim serves ESL on the given port and takes console commands."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "fsbarge.sim", "--port", "0", "--password", "secret"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert banner.startswith("FreeSWITCH simulator on 127.0.0.1:")
        port = int(banner.split(":")[1].split()[0])
        c = EslClient("127.0.0.1", port)
        assert c.auth("secret").headers["Reply-Text"] == "+OK accepted"
        c.command("event plain CHANNEL_PARK")
        proc.stdin.write("dial 1002 *351000\n")
        proc.stdin.flush()
        park = c.wait_event(named("CHANNEL_PARK"))
        assert park["variable_fsbarge_mode"] == "barge"
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_global_getvar_core_uuid_changes_with_a_restart(sim: FreeSwitchSim, esl_client) -> None:
    """The daemon tells a FreeSWITCH restart from a reconnect by `global_getvar core_uuid`."""
    c = esl_client(events=None)
    before = c.api("global_getvar core_uuid")
    # an empty api result comes back as "-ERR no reply" (mod_event_socket)
    assert before == sim.core_uuid and c.api("global_getvar no_such_var") == "-ERR no reply\n"
    new = sim.shutdown_restart()
    c2 = esl_client(events=None)
    assert c2.api("global_getvar core_uuid") == new != before
