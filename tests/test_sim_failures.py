"""Each failure mode of the simulator does to a client what a sick FreeSWITCH would."""

from __future__ import annotations

import json
import socket as stdlib_socket
import urllib.parse

import gevent
import pytest

from fsbarge.sim import FreeSwitchSim, malformed
from tests.e2e import WAIT
from tests.sim_fixtures import (  # noqa: F401
    EslClient, disconnect_notice, drop_connections, esl_client, named, parse_plain, restart_freeswitch,
    send_garbage, silence, sim, sim_disconnect_on_command, sim_refusing, sim_reject_auth, sim_stalled, threaded_sim,
)


def test_drop_connections_closes_without_notice(sim: FreeSwitchSim, esl_client, drop_connections) -> None:
    c = esl_client(events="ALL")
    sim.wait_for_clients(1, subscribed=True)
    assert drop_connections() == 1
    raw = c.wait_closed()
    assert b"disconnect-notice" not in raw
    sim.wait_for(lambda: not sim.clients())


def test_disconnect_notice_then_close(sim: FreeSwitchSim, esl_client, disconnect_notice) -> None:
    c = esl_client(events="ALL")
    assert disconnect_notice() == 1
    raw = c.wait_closed()
    assert raw.endswith(b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                        b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")


def test_stalled_replies_arrive_only_when_released(sim_stalled: FreeSwitchSim, esl_client) -> None:
    """While stalled, a command is received (and recorded) but neither run nor answered."""
    sim = sim_stalled
    c = EslClient(sim.host, sim.port)
    assert c.read_frame().content_type == "auth/request"
    c.send("auth ClueCon\n\n")
    sim.wait_for_command(lambda t: t == "auth ClueCon")
    with pytest.raises(TimeoutError):
        c.read_frame(timeout=0.2)
    assert sim.clients()[0].authed is False
    sim.stall_replies(False)
    assert c.read_frame().headers["Reply-Text"] == "+OK accepted"
    sim.stall_replies(True)
    c.send("api uuid_exists x\n\n")
    sim.wait_for_command(lambda t: t.startswith("api uuid_exists"))
    with pytest.raises(TimeoutError):
        c.read_frame(timeout=0.2)
    sim.stall_replies(False)
    assert c.read_frame().body == b"false"
    c.close()


def test_silence_sends_nothing_runs_nothing_and_keeps_the_socket_open(sim: FreeSwitchSim, esl_client, silence) -> None:
    """A silenced connection gets no event, no reply, no HEARTBEAT, and is not closed; its commands
    are recorded but not run; a connection made meanwhile gets not even auth/request; once the
    silence is lifted new connections work (the silenced one stays dead)."""
    c = esl_client(events="ALL")
    assert silence() == 1 and [x.silent for x in sim.clients()] == [True]
    call = sim.place_call("1001", "1000")
    sim.heartbeat()
    c.send("api uuid_kill " + call.a_uuid + "\n\n")
    sim.wait_for_command(lambda t: t.startswith("api uuid_kill"))
    with pytest.raises(TimeoutError):
        c.read_frame(timeout=0.2)
    assert c.events == [] and not c.closed and sim.channel(call.a_uuid) is not None
    late = EslClient(sim.host, sim.port)
    with pytest.raises(TimeoutError):
        late.read_frame(timeout=0.2)
    silence(False)
    fresh = esl_client(events="ALL")
    assert fresh.api("uuid_exists " + call.a_uuid) == "true"
    assert sorted(x.silent for x in sim.clients()) == [False, True, True]
    late.close()


def test_reject_auth_refuses_even_the_right_password(sim_reject_auth: FreeSwitchSim) -> None:
    c = EslClient(sim_reject_auth.host, sim_reject_auth.port)
    assert c.auth("ClueCon").headers["Reply-Text"] == "-ERR invalid"
    assert b"text/disconnect-notice" in c.wait_closed()


def test_disconnect_on_next_command_closes_with_no_reply(sim_disconnect_on_command: FreeSwitchSim) -> None:
    sim = sim_disconnect_on_command
    c = EslClient(sim.host, sim.port)
    assert c.read_frame().content_type == "auth/request"
    c.send("auth ClueCon\n\n")
    raw = c.wait_closed()
    assert raw == b"Content-Type: auth/request\n\n"
    assert sim.received_commands[-1][1] == "auth ClueCon"
    assert sim.disconnect_on_next_command is False  # one-shot
    again = EslClient(sim.host, sim.port)
    assert again.auth().headers["Reply-Text"] == "+OK accepted"
    again.close()


def test_refuse_connections_until_listening_again(sim_refusing: FreeSwitchSim) -> None:
    sim = sim_refusing
    port = sim.port
    with pytest.raises(ConnectionRefusedError):
        EslClient(sim.host, port)
    sim.refuse_connections = False
    assert sim.port == port
    c = EslClient(sim.host, port)
    assert c.auth().headers["Reply-Text"] == "+OK accepted"
    c.close()


def test_refusing_keeps_existing_connections(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events=None)
    sim.refuse_connections = True
    try:
        assert c.api("uuid_exists x") == "false"
    finally:
        sim.refuse_connections = False


def read_raw_until(client: EslClient, needle: bytes, timeout: float = WAIT) -> bytes:
    """Raw bytes from the socket, unparsed (garbage may not be parseable at all)."""
    data = b""
    with gevent.Timeout(timeout, TimeoutError("bytes did not arrive")):
        while needle not in data:
            chunk = client.sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.mark.parametrize("name", sorted(malformed.SAMPLES))
def test_send_raw_delivers_malformed_frames_verbatim(sim: FreeSwitchSim, esl_client, send_garbage, name: str) -> None:
    c = esl_client(events=None)
    assert send_garbage(name) == 1
    assert malformed.SAMPLES[name]() in read_raw_until(c, malformed.SAMPLES[name]())


def test_send_raw_garbage_then_reply_order(sim: FreeSwitchSim, esl_client) -> None:
    c = esl_client(events=None)
    sim.send_raw(malformed.non_utf8_event("11111111-1111-1111-1111-111111111111"))
    c.send("api uuid_exists x\n\n")
    c.wait_event(lambda e: e.name == "CHANNEL_CREATE")
    ev = c.events[-1]
    assert ev["Unique-ID"] == "11111111-1111-1111-1111-111111111111"
    assert c.read_frame().body == b"false"


def test_hostile_header_forges_unique_id_only_for_decode_then_split_parsers(sim: FreeSwitchSim, esl_client) -> None:
    """A value containing '%0A' is sent as is; decoding the whole body first forges a header line."""
    real, forged = "aaaaaaaa-0000-0000-0000-000000000001", "ffffffff-0000-0000-0000-000000000002"
    c = esl_client(events=None)
    sim.send_raw(malformed.hostile_header_event(real, forged))
    ev = c.wait_event(named("CHANNEL_PARK"))
    assert ev.all("Unique-ID") == [real]  # split lines, then decode each value
    assert ev["Caller-Caller-ID-Name"] == f"Mallory\nUnique-ID: {forged}"
    naive = dict(line.split(": ", 1) for line in urllib.parse.unquote(ev.raw.decode()).strip().split("\n"))
    assert naive["Unique-ID"] == forged  # what greenswitch's decode-then-split would believe


def test_hostile_caller_id_flows_through_real_events(sim: FreeSwitchSim, esl_client) -> None:
    """A phone's display name with '%0A' reaches every event of its leg unescaped-percent."""
    c = esl_client(events="CHANNEL_PARK")
    forged = "ffffffff-0000-0000-0000-000000000002"
    sup = sim.dial("1002", "*331000", caller_id_name=f"Eve%0AUnique-ID: {forged}")
    ev = c.wait_event(named("CHANNEL_PARK"))
    assert ev.all("Unique-ID") == [sup]
    assert f"Caller-Caller-ID-Name: Eve%0AUnique-ID%3A%20{forged}\n" in ev.raw.decode()


def test_freeswitch_restart(sim: FreeSwitchSim, esl_client, restart_freeswitch) -> None:
    """SHUTDOWN, SYSTEM_SHUTDOWN hang-ups, dropped sockets; then a new Core-UUID and no channels."""
    c = esl_client(events="SHUTDOWN CHANNEL_HANGUP_COMPLETE")
    old_core = sim.core_uuid
    call = sim.place_call("1001", "1000")
    new_core = restart_freeswitch()
    raw = c.wait_closed()
    assert new_core != old_core and sim.core_uuid == new_core
    names = [e.name for e in c.events]
    assert names[0] == "SHUTDOWN" and names.count("CHANNEL_HANGUP_COMPLETE") == 2
    assert {e["Hangup-Cause"] for e in c.events[1:]} == {"SYSTEM_SHUTDOWN"}
    assert b"disconnect-notice" not in raw
    fresh = esl_client(events="CHANNEL_CREATE")
    assert fresh.api("show channels as json") == '{"row_count": 0}\n'
    assert fresh.api(f"uuid_exists {call.a_uuid}") == "false"
    sim.place_call("1001", "1000")
    ev = fresh.wait_event(named("CHANNEL_CREATE"))
    assert ev["Core-UUID"] == new_core and int(ev["Event-Sequence"]) < 20


def test_threaded_sim_serves_a_blocking_stdlib_client(threaded_sim: FreeSwitchSim) -> None:
    """With threaded=True the simulator keeps serving while this thread blocks in recv()."""
    sim = threaded_sim
    s = stdlib_socket.create_connection((sim.host, sim.port), timeout=WAIT)
    buf = b""

    def frame() -> tuple[dict, bytes]:
        nonlocal buf
        while True:
            end = buf.find(b"\n\n")
            if end >= 0:
                headers = dict(line.split(": ", 1) for line in buf[:end].decode().split("\n"))
                length = int(headers.get("Content-Length", 0))
                if len(buf) - end - 2 >= length:
                    body, buf = buf[end + 2 : end + 2 + length], buf[end + 2 + length :]
                    return headers, body
            buf += s.recv(65536)

    assert frame()[0]["Content-Type"] == "auth/request"
    s.sendall(b"auth ClueCon\n\nevent plain CHANNEL_PARK\n\n")
    assert frame()[0]["Reply-Text"] == "+OK accepted"
    assert frame()[0]["Reply-Text"] == "+OK event listener enabled plain"
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*351000")
    headers, body = frame()
    ev = parse_plain(body)
    assert ev.name == "CHANNEL_PARK" and ev["variable_fsbarge_mode"] == "barge" and ev["Unique-ID"] == sup
    s.sendall(f"sendmsg {sup}\ncall-command: execute\nexecute-app-name: three_way\nexecute-app-arg: {call.b_uuid}\n\n".encode())
    assert frame()[0]["Reply-Text"] == "+OK"
    assert sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "barge")
    s.sendall(b"api show channels as json\n\n")
    rows = json.loads(frame()[1])["rows"]
    assert {r["uuid"] for r in rows} == {call.a_uuid, call.b_uuid, sup}
    s.close()


def test_heartbeat_events_every_interval() -> None:
    """heartbeat_interval fires HEARTBEAT like the core's 20 s timer (here 10 ms)."""
    with FreeSwitchSim(heartbeat_interval=0.01) as sim:
        c = EslClient(sim.host, sim.port)
        c.auth()
        c.command("event plain HEARTBEAT")
        first = c.wait_event(named("HEARTBEAT"))
        second = c.wait_event(named("HEARTBEAT"), start=c.events.index(first) + 1)
        assert int(second["Event-Sequence"]) > int(first["Event-Sequence"])
        assert first["Event-Info"] == "System Ready" and first["Core-UUID"] == sim.core_uuid
        c.close()
