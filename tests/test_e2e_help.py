"""Help requests end to end against the simulator: `fsbarge help request` reaches the daemon through
FreeSWITCH as a *9 would, the supervisors are rung, and `fsbarge help list` shows the request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, cli, wait_until, write_config
from tests.sim_fixtures import threaded_sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim(threaded_sim: FreeSwitchSim) -> FreeSwitchSim:  # noqa: F811
    """In its own thread: `fsbarge help request` (another process, waited for) talks to it."""
    return threaded_sim


@pytest.fixture
def config(tmp_path: Path, sim: FreeSwitchSim, daemon_db_url: str) -> Path:
    return write_config(tmp_path, sim.port, database_url=daemon_db_url)


@pytest.fixture
def daemon(config: Path) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(config) as d:
        d.wait_connected()
        yield d


def originates(sim: FreeSwitchSim) -> list[str]:
    return [t.split("\n")[0] for _, t in sim.received_commands if t.startswith("bgapi originate")]


def test_an_external_request_rings_the_team_and_is_listed(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    wait_until(lambda: daemon.service.channels.agent_leg("1000") is not None, what="the agent's call mirrored")
    daemon.settle()
    done = cli(config, "help", "request", "--agent", "1000", "--reason", "customer asked for a manager")
    assert done.stdout == "help requested for agent 1000 on pbx1\n"
    wait_until(lambda: len(originates(sim)) == 2, what="both sales supervisors rung")
    first, second = originates(sim)
    assert "origination_caller_id_name='Help 1000'" in first and first.endswith("}user/1002 &park()")
    assert second.endswith("}user/1005 &park()")
    [req] = json.loads(cli(config, "help", "list", "--format", "json").stdout)
    assert {k: req[k] for k in ("node", "agent", "agent_uuid", "customer", "outcome", "source", "reason")} == {
        "node": "pbx1", "agent": "1000", "agent_uuid": call.b_uuid, "customer": "1001", "outcome": None,
        "source": "external", "reason": "customer asked for a manager",
    }
    csv_out = cli(config, "help", "list", "--format", "csv", "--outcome", "ringing").stdout.splitlines()
    assert csv_out[0] == "id,node,agent,agent_uuid,customer,requested_at,outcome,answered_by,answered_at,intervention_id,source,reason"
    assert len(csv_out) == 2
    assert cli(config, "help", "list", "--outcome", "answered").stdout == "(no help requests)\n"
    # the agent's call ends while it rings: the request ends as call_ended, the phones stop
    sim.hangup(call.b_uuid)
    wait_until(lambda: json.loads(cli(config, "help", "list", "--format", "json").stdout)[0]["outcome"] == "call_ended",
               what="call_ended recorded", timeout=20)


@pytest.mark.parametrize(
    ("agent", "message"),
    [("4242", "'4242' is not an agent of any team"), ("1004", "agent 1004 is not on an answered call")],
)
def test_a_request_that_cannot_be_served_is_one_line(sim, daemon, config, agent: str, message: str) -> None:
    out = cli(config, "help", "request", "--agent", agent, check=False)
    assert out.returncode == 1 and message in out.stderr and out.stderr.count("\n") == 1 and out.stdout == ""
