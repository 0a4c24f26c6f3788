"""Builders for pure tests: events as the daemon sees them, a config, a barge machine."""

from __future__ import annotations

import itertools
from typing import Any

from fsbarge.core.barge import BargeMachine, Tones
from fsbarge.core.channels import ChannelTable
from fsbarge.config import Config, NodeConfig, PolicyConfig, TeamConfig
from fsbarge.core.events import Event
from fsbarge.core.policy import Policy

ERROR_TONE = "tone_stream://error"
ENDED_TONE = "tone_stream://ended"

CUSTOMER = "c0000000-0000-0000-0000-00000000cust"
AGENT = "a0000000-0000-0000-0000-00000000agnt"
SUP = "50000000-0000-0000-0000-000000000sup"
SUP2 = "50000000-0000-0000-0000-00000000sup2"


def config(**policy: Any) -> Config:
    return Config(
        path="test.toml",
        nodes=(NodeConfig("pbx1", "127.0.0.1", 8021, password="ClueCon"),),
        teams=(
            TeamConfig("sales", agents=("1000", "1004"), supervisors=("1002", "1005")),
            TeamConfig("support", agents=("1010",), supervisors=("1012",), modes=("listen", "whisper")),
        ),
        policy=PolicyConfig(**policy),
    )


def ev(name: str, uuid: str | None, **fields: Any) -> Event:
    fields.setdefault("has_variables", name != "DTMF")
    return Event(name, uuid, **fields)


def call_events(customer: str = "1001", agent: str = "1000", a: str = CUSTOMER, b: str = AGENT) -> list[Event]:
    """Customer calls agent, as in the captures: inbound A-leg bridged to user/<agent>."""
    a_common = dict(
        channel_name=f"sofia/internal/{customer}@127.0.0.1",
        direction="inbound",
        user_name=customer,
        dialed_user=agent,  # FreeSWITCH sets dialed_user on the caller's leg too
        presence_id=f"{customer}@127.0.0.1",
        caller_number=customer,
        destination=agent,
        call_uuid=a,
    )
    b_common = dict(
        channel_name=f"sofia/internal/gw+{agent}@127.0.0.1:5070",
        direction="outbound",
        dialed_user=agent,
        presence_id=f"{agent}@127.0.0.1",
        caller_number=customer,
        destination=f"gw+{agent}",
        call_uuid=a,
    )
    return [
        ev("CHANNEL_CREATE", a, answer_state="ringing", **a_common),
        ev("CHANNEL_EXECUTE", a, application="bridge", application_data=f"user/{agent}@127.0.0.1", answer_state="ringing", **a_common),
        ev("CHANNEL_CREATE", b, answer_state="ringing", **b_common),
        ev("CHANNEL_ANSWER", b, answer_state="answered", timestamp=100.0, **b_common),
        ev("CHANNEL_ANSWER", a, answer_state="answered", timestamp=100.1, **a_common),
        ev("CHANNEL_BRIDGE", a, answer_state="answered", bridge_a=a, bridge_b=b, other_uuid=b, **a_common),
    ]


def park(mode: str = "listen", target: str = "1000", supervisor: str | None = "1002", uuid: str = SUP) -> Event:
    return ev(
        "CHANNEL_PARK",
        uuid,
        channel_name=f"sofia/internal/{supervisor or '9999'}@127.0.0.1",
        direction="inbound",
        answer_state="answered",
        user_name=supervisor,
        caller_number=supervisor or "9999",
        presence_id=f"{supervisor}@127.0.0.1" if supervisor else None,
        destination=f"*3x{target}",
        call_uuid=uuid,
        application="park",
        fsbarge_mode=mode,
        fsbarge_target=target,
    )


def execute(app: str, uuid: str = SUP, data: str = AGENT, app_uuid: str | None = None) -> Event:
    return ev("CHANNEL_EXECUTE", uuid, application=app, application_data=data, application_uuid=app_uuid, answer_state="answered")


def complete(app: str, uuid: str = SUP, data: str = AGENT, app_uuid: str | None = None, answer_state: str = "answered") -> Event:
    return ev(
        "CHANNEL_EXECUTE_COMPLETE",
        uuid,
        application=app,
        application_data=data,
        application_uuid=app_uuid,
        application_response="_none_",
        answer_state=answer_state,
    )


def bug(name: str = "MEDIA_BUG_START", target: str = AGENT) -> Event:
    return ev(name, target, media_bug_function="eavesdrop", media_bug_target=target, answer_state="answered")


def dtmf(digit: str, uuid: str = SUP) -> Event:
    return ev("DTMF", uuid, dtmf_digit=digit, dtmf_source="RTP", answer_state="answered")


def hangup(uuid: str, cause: str = "NORMAL_CLEARING") -> Event:
    return ev("CHANNEL_HANGUP", uuid, hangup_cause=cause, answer_state="hangup")


class Rig:
    """A channel table and a barge machine fed like the service feeds them, with a fake clock."""

    def __init__(self, node: str = "pbx1", **policy: Any) -> None:
        self.table = ChannelTable(node)
        ids = itertools.count(1)
        prefix = "" if node == "pbx1" else f"{node}-"  # ids of another node's machine never collide
        self.machine = BargeMachine(
            node, Policy(config(**policy)), self.table, Tones(ERROR_TONE, ENDED_TONE), lambda: f"{prefix}app-{next(ids)}"
        )
        self.now = 1000.0
        self.effects: list[Any] = []

    def feed(self, *events: Event, dt: float = 1.0) -> list[Any]:
        out: list[Any] = []
        for e in events:
            self.now += dt
            iv = self.machine.active.get(e.uuid or "")
            if e.name.startswith("CHANNEL_EXECUTE") and e.application_uuid is None and iv is not None:
                # FreeSWITCH echoes our sendmsg's Event-UUID as Application-UUID (captures 03)
                e.application_uuid = iv.app_uuid
            self.table.apply(e)
            out += self.machine.handle(e, self.now)
        self.effects += out
        return out

    def call(self, **kw: Any) -> None:
        self.feed(*call_events(**kw), dt=0.0)
