"""Cross-node barge end to end: two simulated FreeSWITCH nodes on one simulated SIP network, one
daemon serving both. The supervisor dials on pbx1, the agent talks on pbx2: the supervisor's call
is sent to pbx2 with a single-use token and eavesdrops there (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, audit_json, wait_until, write_config

pytestmark = pytest.mark.e2e

PBX1, PBX2 = "pbx1.sim.invalid:5080", "pbx2.sim.invalid:5080"
ERROR_TONE = "tone_stream://%(100,0,480)"
ENDED_TONE = "tone_stream://%(100,0,440)"


@pytest.fixture
def nodes() -> Iterator[tuple[FreeSwitchSim, FreeSwitchSim]]:
    one, two = FreeSwitchSim(password="ClueCon").start(), FreeSwitchSim(password="ClueCon").start()
    one.join_network(PBX1)
    two.join_network(PBX2, acl={PBX1})
    yield one, two
    one.stop()
    two.stop()


def configure(tmp: Path, one: FreeSwitchSim, two: FreeSwitchSim, db: str, pbx2_address: str | None = PBX2) -> Path:
    second = f'[[freeswitch]]\nname = "pbx2"\nhost = "127.0.0.1"\nport = {two.port}\npassword = "ClueCon"\n'
    if pbx2_address:
        second += f'sip_address = "{pbx2_address}"\n'
    return write_config(tmp, one.port, database_url=db, node_extra=f'sip_address = "{PBX1}"', extra=second)


@pytest.fixture
def config(tmp_path: Path, nodes, daemon_db_url: str) -> Path:
    return configure(tmp_path, *nodes, daemon_db_url)


def running(config: Path) -> InProcessDaemon:
    d = InProcessDaemon(config).__enter__()
    d.wait_connected()
    second = d.daemon.services[1]
    wait_until(lambda: second.resyncs >= 1 and second.session is not None, what="pbx2 resynced")
    return d


@pytest.fixture
def daemon(config: Path) -> Iterator[InProcessDaemon]:
    d = running(config)
    yield d
    d.__exit__(None, None, None)


def agent_call_on_pbx2(two: FreeSwitchSim, daemon: InProcessDaemon, agent: str = "1000"):
    call = two.place_call("1001", agent)
    wait_until(lambda: daemon.daemon.services[1].channels.agent_leg(agent) is not None, what="pbx2 mirrors the agent's call")
    return call


def sent_across(one: FreeSwitchSim, two: FreeSwitchSim, supervisor: str, code: str) -> tuple[str, str]:
    """The supervisor dials on pbx1; returns their leg there and the leg that eavesdrops on pbx2."""
    sup = one.dial(supervisor, code)
    far = wait_until(lambda: one.far_leg(sup), what="pbx1 bridged the supervisor to pbx2")
    wait_until(lambda: two.eavesdrop_mode(far) is not None, what="eavesdrop running on pbx2")
    return sup, far


def records(config: Path) -> list[dict]:
    return audit_json(config)


def test_whisper_across_nodes_with_dtmf_and_one_record_naming_both_nodes(nodes, daemon, config) -> None:
    one, two = nodes
    call = agent_call_on_pbx2(two, daemon)
    sup, far = sent_across(one, two, "1002", "*341000")
    bridge = [t for _, t in one.received_commands if "execute-app-name: bridge" in t]
    assert len(bridge) == 1 and f"@{PBX2}" in bridge[0] and "sofia/external/fsbarge-" in bridge[0]
    assert two.eavesdrop_target(far) == call.b_uuid  # the agent's own leg
    assert two.hears_supervisor(far) == {call.b_uuid}  # whisper: the agent only
    one.press(sup, "3")  # RFC 2833 from the supervisor's phone, through pbx1, to pbx2's eavesdrop
    wait_until(lambda: two.eavesdrop_mode(far) == "barge", what="barge on pbx2")
    assert two.hears_supervisor(far) == {call.b_uuid, call.a_uuid}
    one.hangup(sup)
    wait_until(lambda: two.channel(far) is None, what="the leg on pbx2 hung up with the supervisor")
    rec = wait_until(lambda: (r := records(config)) and r[0]["outcome"] == "completed" and r, what="record closed")
    [rec] = rec
    assert (rec["node"], rec["supervisor_node"], rec["supervisor"], rec["agent"]) == ("pbx2", "pbx1", "1002", "1000")
    assert (rec["target_uuid"], rec["customer"], rec["supervisor_uuid"]) == (call.b_uuid, "1001", far)
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("whisper", "feature_code"), ("barge", "dtmf")]
    assert rec["end_reason"] == "supervisor_hangup"


def test_a_key_the_team_does_not_allow_is_undone_on_the_agents_node(nodes, daemon, config) -> None:
    one, two = nodes
    agent_call_on_pbx2(two, daemon, "1010")
    sup, far = sent_across(one, two, "1012", "*341010")
    one.press(sup, "3")  # support may listen and whisper only
    wait_until(lambda: any(m[0] == "barge" for m in two.eavesdrop_log()[far]["modes"]), what="FreeSWITCH applied the key")
    wait_until(lambda: two.eavesdrop_mode(far) == "whisper", what="the key undone on pbx2")
    one.hangup(sup)
    [rec] = wait_until(lambda: (r := records(config)) and r[0]["outcome"] == "completed" and r, what="record closed")
    assert [(m["mode"], m.get("refused", False)) for m in rec["modes"]] == [("whisper", False), ("barge", True)]


def test_the_agents_call_ending_ends_the_supervisors_call_on_both_nodes(nodes, daemon, config) -> None:
    one, two = nodes
    call = agent_call_on_pbx2(two, daemon)
    sup, far = sent_across(one, two, "1002", "*331000")
    two.hangup(call.a_uuid)
    wait_until(lambda: one.channel(sup) is None, what="the supervisor's call on pbx1 ended")
    assert any(ENDED_TONE in t for _, t in two.received_commands)  # played on pbx2, heard through the leg
    [rec] = wait_until(lambda: (r := records(config)) and r[0]["outcome"] == "completed" and r, what="record closed")
    assert (rec["end_reason"], rec["node"]) == ("call_ended", "pbx2")


def test_policy_refusals_are_decided_where_the_supervisor_dialled(nodes, daemon, config) -> None:
    one, two = nodes
    agent_call_on_pbx2(two, daemon)
    sup = one.dial("1012", "*331000")  # 1012 supervises support, not sales
    wait_until(lambda: one.channel(sup) is None, what="refused")
    [rec] = records(config)
    assert (rec["outcome"], rec["reason"], rec["node"]) == ("denied", "not_in_team", "pbx1")
    assert not [t for _, t in one.received_commands if "execute-app-name: bridge" in t]


def test_a_node_that_cannot_be_reached_gives_the_error_tone_and_one_failed_record(nodes, tmp_path, daemon_db_url) -> None:
    one, two = nodes
    cfg = configure(tmp_path, one, two, daemon_db_url, pbx2_address="pbx2.elsewhere.invalid:5080")
    d = running(cfg)
    try:
        agent_call_on_pbx2(two, d)
        sup = one.dial("1002", "*331000")
        wait_until(lambda: one.channel(sup) is None, what="the supervisor hung up after the tone")
        assert any(ERROR_TONE in t for _, t in one.received_commands)
        [rec] = records(cfg)
    finally:
        d.__exit__(None, None, None)
    assert (rec["outcome"], rec["reason"], rec["node"], rec["supervisor_node"]) == ("failed", "node_unreachable", "pbx2", "pbx1")


def test_the_agents_node_admits_token_calls_only_from_the_other_nodes(nodes, daemon, config) -> None:
    one, two = nodes
    two.join_network(PBX2, acl={"somewhere.else.invalid:5080"})  # pbx2's drop-in no longer admits pbx1
    agent_call_on_pbx2(two, daemon)
    sup = one.dial("1002", "*331000")
    wait_until(lambda: one.channel(sup) is None, what="refused")
    assert not [t for _, t in two.received_commands if "eavesdrop" in t]
    [rec] = records(config)  # recorded once, where the supervisor dialled
    assert (rec["outcome"], rec["reason"]) == ("failed", "node_unreachable")


def test_a_restarted_daemon_reattaches_a_cross_node_intervention(nodes, config) -> None:
    one, two = nodes
    first = running(config)
    call = agent_call_on_pbx2(two, first)
    sup, far = sent_across(one, two, "1002", "*331000")
    one.press(sup, "2")
    wait_until(lambda: [m["mode"] for m in first.audit()[0]["modes"]] == ["listen", "whisper"], what="whisper recorded")
    first.__exit__(None, None, None)
    one.press(sup, "3")  # while no daemon runs: FreeSWITCH applies it, no record of it
    wait_until(lambda: two.eavesdrop_mode(far) == "barge", what="barge on pbx2")
    second = running(config)
    try:
        wait_until(lambda: two.eavesdrop_mode(far) == "whisper", what="the recorded mode re-asserted on pbx2")
        one.hangup(sup)
        [rec] = wait_until(lambda: (r := records(config)) and r[0]["outcome"] == "completed" and r, what="record closed")
    finally:
        second.__exit__(None, None, None)
    assert rec["target_uuid"] == call.b_uuid and rec["supervisor_node"] == "pbx1"
    # the key pressed while no daemon ran is not claimed as whisper: the gap is unknown until the re-attach
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [
        ("listen", "feature_code"), ("whisper", "dtmf"), ("unknown", "daemon_down"), ("whisper", "reattach")]
    assert rec["end_reason"] == "supervisor_hangup"


# -- two instances on PostgreSQL: the supervisor's node and the agent's served by different daemons --


@pytest.fixture
def shared_url(postgres) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = postgres.create_database(migrated=True)
    yield url
    postgres.release_database(url)


def instance(tmp: Path, name: str, node: str, one: FreeSwitchSim, two: FreeSwitchSim, url: str,
             monkeypatch: pytest.MonkeyPatch) -> InProcessDaemon:
    """An instance of the shared configuration (its own journal) that competes for ``node`` only,
    so that each instance serves one of the two nodes."""
    d = tmp / name
    d.mkdir()
    monkeypatch.setenv("FSBARGE_INSTANCE", name)
    daemon = InProcessDaemon(configure(d, one, two, url))
    assert daemon.daemon.ownership is not None
    daemon.daemon.ownership.nodes = [node]
    return daemon.__enter__()


@pytest.mark.postgresql
def test_a_supervisor_on_one_instances_node_barges_an_agent_on_anothers(nodes, tmp_path, shared_url, monkeypatch) -> None:
    one, two = nodes
    a = instance(tmp_path, "instance-a", "pbx1", one, two, shared_url, monkeypatch)
    b = instance(tmp_path, "instance-b", "pbx2", one, two, shared_url, monkeypatch)
    try:
        wait_until(lambda: a.daemon.serving() == ["pbx1"] and b.daemon.serving() == ["pbx2"], 15, "one node each")
        wait_until(lambda: all(s.session is not None for s in (a.daemon.services[0], b.daemon.services[1])), what="both connected")
        call = two.place_call("1001", "1000")
        assert a.daemon.tickets is not None
        wait_until(lambda: a.daemon.tickets.agent_node("1000", exclude=["pbx1"]) == "pbx2", 10, "the agent's call in the mirror")
        sup, far = sent_across(one, two, "1002", "*341000")
        assert two.eavesdrop_target(far) == call.b_uuid and two.hears_supervisor(far) == {call.b_uuid}
        one.press(sup, "0")
        wait_until(lambda: two.eavesdrop_mode(far) == "listen", what="listen on pbx2")
        one.hangup(sup)
        wait_until(lambda: two.channel(far) is None, what="the leg on pbx2 hung up")
        # each instance acted on its own node only: pbx1 got the bridge, pbx2 the eavesdrop
        assert not [t for _, t in two.received_commands if "execute-app-name: bridge" in t]
        assert len([t for _, t in two.received_commands if "execute-app-name: eavesdrop" in t]) == 1
        b.settle()
        [rec] = wait_until(lambda: (r := a.audit()) and r[0]["outcome"] == "completed" and r, 10, "record closed")
    finally:
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)
    assert (rec["node"], rec["supervisor_node"], rec["supervisor"], rec["target_uuid"]) == ("pbx2", "pbx1", "1002", call.b_uuid)
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("whisper", "feature_code"), ("listen", "dtmf")]


@pytest.mark.postgresql
def test_an_agent_on_another_instances_node_without_an_address_is_target_on_other_node(nodes, tmp_path, shared_url, monkeypatch) -> None:
    one, two = nodes
    d = tmp_path / "x"
    d.mkdir()
    a_cfg = configure(d, one, two, shared_url, pbx2_address=None)
    monkeypatch.setenv("FSBARGE_INSTANCE", "instance-a")
    a = InProcessDaemon(a_cfg)
    a.daemon.ownership.nodes = ["pbx1"]  # type: ignore[union-attr]
    a.__enter__()
    b = instance(tmp_path, "instance-b", "pbx2", one, two, shared_url, monkeypatch)
    try:
        wait_until(lambda: a.daemon.serving() == ["pbx1"] and b.daemon.serving() == ["pbx2"], 15, "one node each")
        wait_until(lambda: a.daemon.services[0].session is not None and b.daemon.services[1].session is not None, what="both connected")
        two.place_call("1001", "1000")
        wait_until(lambda: a.daemon.tickets.agent_node("1000", exclude=["pbx1"]) == "pbx2", 10, "the agent's call in the mirror")  # type: ignore[union-attr]
        sup = one.dial("1002", "*331000")
        wait_until(lambda: one.channel(sup) is None, what="refused")
        [rec] = a.audit()
    finally:
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)
    assert (rec["outcome"], rec["reason"], rec["node"], rec["supervisor_node"]) == ("denied", "target_on_other_node", "pbx2", "pbx1")
