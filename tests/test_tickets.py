"""Cross-node tickets in the database (fsbarge.daemon.tickets), on SQLite and PostgreSQL: one winner
between the claim of the agent's node and the revoke of the supervisor's node."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from fsbarge.core.crossnode import Claim, CrossNode, Ticket, TicketError
from fsbarge.store.channel_mirror import ChannelStore
from fsbarge.daemon.tickets import TicketStore

NOW = 1_800_000_000.0


def ticket(token: str = "a" * 32, to_node: str = "pbx2") -> Ticket:
    return Ticket(token, to_node, "pbx1", "1002", "sup-uuid", "1000", "whisper", NOW)


@pytest.fixture
def store(engine: Engine) -> TicketStore:
    return TicketStore(engine, run=lambda fn: fn())


def test_a_ticket_is_claimed_once_by_the_node_it_names(store: TicketStore) -> None:
    store.issue(ticket(), NOW + 30)
    assert store.claim("a" * 32, "pbx3", NOW + 1) is Claim.UNKNOWN
    assert store.claim("a" * 32, "pbx2", NOW + 1) == ticket()
    assert store.claim("a" * 32, "pbx2", NOW + 2) is Claim.SPENT
    assert store.revoke("a" * 32) is False  # the agent's node has it: the supervisor's node records nothing
    assert store.claim("b" * 32, "pbx2", NOW) is Claim.UNKNOWN


def test_a_revoked_or_expired_ticket_cannot_be_claimed(store: TicketStore) -> None:
    store.issue(ticket("c" * 32), NOW + 30)
    assert store.revoke("c" * 32) is True
    assert store.claim("c" * 32, "pbx2", NOW + 1) is Claim.SPENT
    store.issue(ticket("d" * 32), NOW + 30)
    assert store.claim("d" * 32, "pbx2", NOW + 31) is Claim.SPENT  # too late: still issued
    assert store.revoke("d" * 32) is True  # so the supervisor's node records the attempt


def test_the_mirror_says_on_which_other_connected_node_the_agent_talks(engine: Engine, store: TicketStore) -> None:
    channels = ChannelStore(engine)
    leg = {"uuid": "agent-leg", "name": "sofia/internal/gw+1000@x", "direction": "outbound", "answer_state": "answered",
           "user": "1000", "dialed_user": "1000", "answered_at": NOW}
    channels.replace_node("pbx2", [leg])
    channels.set_node_status("pbx2", connected=True)
    assert store.agent_node("1000", exclude=["pbx1"]) == "pbx2"
    assert store.agent_node("1000", exclude=["pbx2"]) is None
    assert store.agent_node("1004", exclude=[]) is None
    channels.set_node_status("pbx2", connected=False)
    assert store.agent_node("1000", exclude=["pbx1"]) is None


def test_a_database_that_fails_fails_the_attempt_with_one_line(engine: Engine) -> None:
    def broken(fn):  # type: ignore[no-untyped-def]
        raise OSError("connection refused\nmore lines")

    store = TicketStore(engine, run=broken)
    with pytest.raises(TicketError, match=r"^issuing a cross-node ticket: connection refused$"):
        store.issue(ticket(), NOW)


class FakeRemote:
    def __init__(self, fail: bool = False) -> None:
        self.rows: dict[str, tuple[Ticket, str]] = {}
        self.fail = fail

    def issue(self, t: Ticket, expires_at: float) -> None:
        if self.fail:
            raise TicketError("down")
        self.rows[t.token] = (t, "issued")

    def claim(self, token: str, node: str, now: float) -> Ticket | Claim:
        if self.fail:
            raise TicketError("down")
        t, state = self.rows.get(token, (None, ""))
        if t is None:
            return Claim.UNKNOWN
        if state != "issued":
            return Claim.SPENT
        self.rows[token] = (t, "claimed")
        return t

    def revoke(self, token: str) -> bool:
        if self.fail:
            raise TicketError("down")
        t, state = self.rows[token]
        self.rows[token] = (t, "revoked")
        return state == "issued"


def test_tickets_for_a_node_served_elsewhere_go_through_the_database() -> None:
    remote = FakeRemote()
    here = CrossNode({"pbx1": "a", "pbx2": "b"}, remote=remote, served=lambda: {"pbx1"})
    there = CrossNode({"pbx1": "a", "pbx2": "b"}, remote=remote, served=lambda: {"pbx2"})
    here.issue(ticket(), NOW)
    assert here.issued == {} and remote.rows["a" * 32][1] == "issued"
    assert there.claim("a" * 32, "pbx2", NOW) == ticket()
    assert here.revoke("a" * 32) is False
    here.issue(ticket("e" * 32), NOW)
    assert here.revoke("e" * 32) is True and there.claim("e" * 32, "pbx2", NOW) is Claim.SPENT


def test_a_database_outage_never_loses_the_record_of_an_attempt() -> None:
    remote = FakeRemote()
    here = CrossNode({"pbx1": "a", "pbx2": "b"}, remote=remote, served=lambda: {"pbx1"})
    there = CrossNode({"pbx1": "a", "pbx2": "b"}, remote=remote, served=lambda: {"pbx2"})
    here.issue(ticket(), NOW)
    remote.fail = True
    assert there.claim("a" * 32, "pbx2", NOW) is Claim.SPENT  # cannot tell: hung up there without a record
    assert here.revoke("a" * 32) is True  # and recorded here
    with pytest.raises(TicketError):
        here.issue(ticket("f" * 32), NOW)
