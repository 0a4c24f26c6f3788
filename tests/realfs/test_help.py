"""Help requests on a real FreeSWITCH, by audio: the agent's *9 rings the supervisor's phone, the
supervisor who answers whispers to the agent only, and the request and its intervention are
recorded and linked.

Agent 1010 (team "support": supervisor 1012 only, whisper allowed) takes a trunk call; the agent's
phone sends *9 as RFC 2833 (the meta key FreeSWITCH binds on the agent's leg); the supervisor's
phone answers into its own tone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .esl import wait_until
from .freeswitch import AGENT3, PHONE_TONES, SUP3
from .lab import ROOT, Lab
from .test_topologies import resolve, trunk_call_to


@pytest.fixture
def idle(lab: Lab) -> Iterator[Lab]:
    lab.wait_pbx_idle()
    yield lab
    lab.hang_up_everything()


def help_requests(lab: Lab) -> list[dict]:
    env = dict(os.environ, FSBARGE_ESL_PASSWORD=lab.pbx.esl_password)
    proc = subprocess.run([sys.executable, "-m", "fsbarge", "help", "list", "--format", "json", "--config", str(lab.config)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_star_9_rings_the_supervisor_who_answers_and_whispers_to_the_agent_only(idle: Lab) -> None:
    lab = idle
    capture = lab.start_capture()
    try:
        call = resolve(lab, trunk_call_to(lab, "5551210", AGENT3, caller="5550004444"))
        capture.wait_event(lambda e: e.name == "CHANNEL_EXECUTE" and e.get("Application") == "bind_meta_app"
                           and e.get("Unique-ID") == call.pbx_agent_uuid, "*9 bound on the agent's leg")
    finally:
        capture.close()
    start = lab.mark()
    lab.press(call.agent, "*9")
    sup = lab.incoming(PHONE_TONES[SUP3], "supervisor", start)
    sup_pbx = lab.pbx_uuid_of(sup)
    record = lab.wait_record(sup_pbx, "the whisper running", lambda r: r["modes"])
    assert (record["origin"], record["requested_mode"], record["supervisor"]) == ("help_request", "whisper", SUP3)
    assert record["modes"][0]["source"] == "help_request" and record["target_uuid"] == call.pbx_agent_uuid
    lab.assert_hearing([call.agent, call.customer, sup], {
        "agent": {"customer", "supervisor"}, "customer": {"agent"}, "supervisor": {"agent", "customer"},
    }, "help request answered: whisper")
    [req] = wait_until(lambda: [r for r in help_requests(lab) if r["outcome"] == "answered"] or None,
                       "the help request recorded as answered", 15)
    assert (req["agent"], req["agent_uuid"], req["answered_by"], req["source"]) == (AGENT3, call.pbx_agent_uuid, SUP3, "phone")
    assert req["intervention_id"] == record["id"] and record["help_request_id"] == req["id"]
    assert req["customer"] == "5550004444"
