"""PostgreSQL down when the daemon starts: an instance alone on the database ([database]
single_instance = true) serves barges from its journal at once; an instance that may share the
database with others serves nothing until the database says which nodes are its own, and says so."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.socket
import pytest
from gevent.server import StreamServer
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from fsbarge.store.engine import make_engine, parse_url
from fsbarge.daemon.ownership import LOCK_CLASS
from fsbarge.sim import FreeSwitchSim
from fsbarge.store.audit_apply import AuditStore
from tests.e2e import InProcessDaemon, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]


class Proxy:
    """The database server's port as the daemon sees it: closed (the server is down) until started."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.target = (parsed.host or "127.0.0.1", parsed.port or 5432)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = parsed.set(port=self.port).render_as_string(hide_password=False)
        self.server: StreamServer | None = None

    def _handle(self, client: gevent.socket.socket, _address: object) -> None:
        upstream = gevent.socket.create_connection(self.target)

        def pump(a: gevent.socket.socket, b: gevent.socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        gevent.joinall([gevent.spawn(pump, client, upstream), gevent.spawn(pump, upstream, client)])
        client.close()
        upstream.close()

    def start(self) -> None:
        self.server = StreamServer(("127.0.0.1", self.port), self._handle)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=1)


@pytest.fixture
def down(postgres) -> Iterator[tuple[str, Proxy]]:  # type: ignore[no-untyped-def]
    url = postgres.create_database(migrated=True)
    proxy = Proxy(url)
    yield url, proxy
    proxy.stop()
    postgres.release_database(url)


def config_for(tmp: Path, port: int, url: str, *, single: bool) -> Path:
    path = write_config(tmp, port, database_url=url)
    if single:
        path.write_text(path.read_text().replace(f'url = "{url}"', f'url = "{url}"\nsingle_instance = true'))
    return path


def node_locks(url: str) -> int:
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c AND granted"),
                                    {"c": LOCK_CLASS}).scalar() or 0)
    finally:
        engine.dispose()


def audited(url: str) -> list[dict]:
    engine = make_engine(url)
    try:
        return AuditStore(engine).list(limit=None)
    finally:
        engine.dispose()


def test_a_single_instance_serves_barges_while_postgresql_is_down_at_start(
    sim: FreeSwitchSim, tmp_path: Path, down: tuple[str, Proxy]
) -> None:
    """Was: two log lines, and never a connection to FreeSWITCH (no node lock without the database)."""
    url, proxy = down
    call = sim.place_call("1001", "1000")
    with InProcessDaemon(config_for(tmp_path, sim.port, proxy.url, single=True)) as d:
        d.wait_connected(timeout=30)
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=30, what="a barge while PostgreSQL is down")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        wait_until(lambda: d.daemon.journal.backlog >= 2, timeout=30, what="the audit journaled")
        assert audited(url) == []

        proxy.start()  # the server is back: the journal is shipped, the node locks taken
        [rec] = wait_until(lambda: [r for r in audited(url) if r["modes"]], timeout=60, what="the audit shipped")
        assert rec["supervisor_uuid"] == sup and rec["outcome"] == "active"
        wait_until(lambda: node_locks(url) == 1, timeout=60, what="the node's lock held, so no other instance serves it")
        assert not d.daemon.health.problems


def test_an_instance_that_may_share_the_database_waits_for_it_and_says_so(
    sim: FreeSwitchSim, tmp_path: Path, down: tuple[str, Proxy]
) -> None:
    """Without single_instance another instance may be serving the node: nothing is served (the
    supervisor waits in park) until the database answers, and `fsbarge status` says why."""
    url, proxy = down
    call = sim.place_call("1001", "1000")
    with InProcessDaemon(config_for(tmp_path, sim.port, proxy.url, single=False)) as d:
        wait_until(lambda: any("serving no node" in p for p in d.daemon.health.problems), timeout=60,
                   what="the wait reported")
        sup = sim.dial("1002", "*331000")
        assert not d.daemon.serving() and not sim.eavesdrop_mode(sup)
        proxy.start()
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=60, what="the parked supervisor served")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        wait_until(lambda: not d.daemon.health.problems, timeout=30, what="the problem cleared")
