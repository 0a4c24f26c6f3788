"""The leases that decide when an instance may act on a node (fsbarge.daemon.ownership.Leases, pure)."""

from __future__ import annotations

from fsbarge.daemon.ownership import Leases, lock_key


def test_a_new_lock_is_served_only_after_the_grace_and_stops_when_the_lease_runs_out() -> None:
    leases = Leases(lease=2.0)
    leases.confirmed(["pbx1"], at=10.0)
    assert leases.to_start(11.9) == []  # the old holder's lease may still run: wait
    leases.confirmed(["pbx1"], at=11.5)
    assert leases.to_start(12.0) == ["pbx1"]
    leases.held["pbx1"].serving = True
    assert leases.valid("pbx1", 13.4) and leases.to_stop(13.4) == []
    assert leases.to_stop(13.5) == ["pbx1"]  # nothing confirmed for a whole lease: stop acting


def test_a_lost_lock_stops_at_once_and_a_lock_got_again_waits_a_new_grace() -> None:
    leases = Leases(lease=2.0)
    leases.confirmed(["pbx1", "pbx2"], at=0.0)
    leases.confirmed(["pbx1", "pbx2"], at=1.5)
    for n in leases.to_start(2.0):
        leases.held[n].serving = True
    leases.lost(["pbx2"])
    assert leases.to_stop(2.1) == ["pbx2"] and leases.valid("pbx1", 2.1)
    leases.held["pbx2"].serving = False
    leases.forget_invalid(2.1)
    leases.confirmed(["pbx2"], at=3.0)
    assert leases.to_start(4.9) == []
    leases.confirmed(["pbx2"], at=4.5)
    assert leases.to_start(5.0) == ["pbx2"]


def test_lock_keys_are_stable_32_bit_and_distinct() -> None:
    keys = {lock_key(f"pbx{i}") for i in range(1000)}
    assert len(keys) == 1000 and all(-(2**31) <= k < 2**31 for k in keys)
    assert lock_key("pbx1") == lock_key("pbx1")


def test_the_two_lease_loops_never_start_a_node_twice_while_starting_yields() -> None:
    """_keep and _fence both apply the leases; starting a node reads the database and yields."""
    import gevent

    from fsbarge.daemon.ownership import Ownership

    started: list[str] = []

    def on_start(node: str) -> None:
        gevent.sleep(0)  # the database read in the daemon's _serve_node
        started.append(node)

    own = Ownership("postgresql+psycopg://fsbarge@127.0.0.1:1/none", ["pbx1", "pbx2"], instance="t",
                    on_start=on_start, on_stop=lambda node: None, clock=lambda: 10.0)
    own.leases.confirmed(["pbx1", "pbx2"], at=8.0)
    own.leases.confirmed(["pbx1", "pbx2"], at=9.5)
    gevent.joinall([gevent.spawn(own._apply), gevent.spawn(own._apply)], raise_error=True)
    assert sorted(started) == ["pbx1", "pbx2"]
