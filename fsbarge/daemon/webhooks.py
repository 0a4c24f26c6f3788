"""Webhook delivery: the outbox (fsbarge.daemon.outbox) POSTed to each receiver, at least once, in order per
intervention, off the event loop and off the barge path.

One greenlet per receiver. Each round reads the receiver's pending deliveries (in gevent's
threadpool, like every database call of the daemon), takes the oldest pending one of each
intervention (a pending earlier delivery blocks the later ones, so a receiver sees an
intervention's events in order), POSTs those that are due one after the other, and records the
outcome. Any 2xx is success; anything else (a status, a refused connection, a timeout, a
connection closed mid-response) is retried with capped exponential backoff (10 s doubling, at
most 15 min) until 24 h after the delivery was queued, then the delivery is marked failed.
`fsbarge webhooks retry ID` puts one back.

The HTTP client is geventhttpclient: its sockets are gevent's own, so it cooperates with the hub
without monkey-patching (the daemon patches nothing, see fsbarge.daemon.root). Each POST runs under one
overall gevent.Timeout, so a receiver that trickles its answer cannot hold its greenlet longer.

Several instances on PostgreSQL: a delivery belongs to the node of its record (the start of its
ordering key), and only the instance serving that node delivers it; a node changing hands
mid-POST may see that POST again (at least once, with the same delivery id), never on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import structlog

from fsbarge.store.errors import DatabaseError
from fsbarge.daemon.offload import blocking
from fsbarge.daemon.outbox import node_of
from fsbarge.daemon.retry import Backoff

__all__ = ["BackoffPolicy", "Deliverer", "HttpPoster", "ReceiverLoop", "heads", "next_state", "sign", "sign_timestamped"]

log = structlog.get_logger("fsbarge.webhooks")

POLL = 0.5  # seconds between looks at the outbox while nothing is due
DB_RETRY = 5.0  # seconds to wait after the database would not answer
MAX_ERROR = 200  # characters of a receiver's error kept in last_error


def sign(secret: str, body: bytes) -> str:
    """``X-Fsbarge-Signature``: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes (SPEC.md)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Fsbarge-Signature-V2``: ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>``.

    The body alone signs nothing about when it was sent: a captured delivery would verify for
    ever. With the sending time signed too (as Stripe and Slack do), a receiver that refuses a
    timestamp more than 5 minutes from its clock limits a replay to those minutes, and
    de-duplicating on ``delivery_id`` for that long closes them."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def request_headers(event: str, delivery: str, body: bytes, secret: str, now: float | None = None) -> dict[str, str]:
    """Every attempt is signed at its own time (a retry a day later still verifies on arrival)."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "X-Fsbarge-Event": event,
        "X-Fsbarge-Delivery": delivery,
        "X-Fsbarge-Signature": sign(secret, body),
        "X-Fsbarge-Timestamp": str(timestamp),
        "X-Fsbarge-Signature-V2": sign_timestamped(secret, timestamp, body),
    }


@dataclass(frozen=True)
class BackoffPolicy(Backoff):
    """Retry after ``first`` seconds, doubling up to ``cap`` (fsbarge.daemon.retry); give up ``give_up`` seconds after queueing."""

    first: float = 10.0
    cap: float = 900.0
    give_up: float = 24 * 3600.0


def next_state(delivery: Mapping[str, Any], ok: bool, now: float, policy: BackoffPolicy) -> tuple[str, int, float | None]:
    """(state, attempts, next_attempt_at) after one attempt of ``delivery`` at ``now``."""
    attempts = int(delivery.get("attempts") or 0) + 1
    if ok:
        return "delivered", attempts, None
    if now - float(delivery["created_at"]) >= policy.give_up:
        return "failed", attempts, None
    return "pending", attempts, now + policy.delay(attempts)


def heads(pending: Sequence[Mapping[str, Any]], may_deliver: Callable[[str], bool]) -> list[Mapping[str, Any]]:
    """The oldest pending delivery of each ordering key (``pending`` is oldest first), for the nodes
    this instance delivers: later ones wait for it, so events arrive in order."""
    seen: set[str] = set()
    out = []
    for d in pending:
        key = d["ordering_key"]
        if key in seen:
            continue
        seen.add(key)
        if may_deliver(node_of(key)):
            out.append(d)
    return out


class HttpPoster:
    """POSTs to one receiver over a kept-alive connection; any failure drops the connection."""

    def __init__(self, url: str, timeout: float) -> None:
        from geventhttpclient import URL

        self.url = url
        self.timeout = timeout
        self._uri = URL(url).request_uri
        self._client: Any = None

    def _connect(self) -> Any:
        from geventhttpclient import HTTPClient

        if self._client is None:
            self._client = HTTPClient.from_url(
                self.url, connection_timeout=self.timeout, network_timeout=self.timeout, concurrency=1,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None on a 2xx answer, else one line saying what went wrong."""
        try:
            with gevent.Timeout(self.timeout):
                response = self._connect().request("POST", self._uri, body=body, headers=dict(headers))
                try:
                    response.read()  # the whole answer, so the connection can carry the next POST
                    status = response.status_code
                finally:
                    response.release()
        except gevent.Timeout:
            self.close()
            return f"timed out after {self.timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - refused, reset, closed mid-response, bad HTTP, TLS, DNS
            self.close()
            text = str(exc) or type(exc).__name__
            return f"{type(exc).__name__}: {text}"[:MAX_ERROR]
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"


class ReceiverLoop:
    """One receiver's delivery greenlet (see the module docstring)."""

    def __init__(
        self,
        receiver: Any,  # fsbarge.config.WebhookConfig
        store: Any,  # fsbarge.store.webhook_deliveries.WebhookStore
        *,
        may_deliver: Callable[[str], bool] = lambda node: True,
        clock: Callable[[], float] = time.time,
        policy: BackoffPolicy | None = None,
        post: Callable[[bytes, Mapping[str, str]], str | None] | None = None,
        run: Callable[[Callable[[], Any]], Any] = blocking,
        poll: float = POLL,
    ) -> None:
        self.receiver = receiver
        self.store = store
        self.may_deliver = may_deliver
        self.clock = clock
        self.policy = policy or BackoffPolicy()
        self.post = post or HttpPoster(receiver.url, receiver.timeout)
        self.run_db = run
        self.poll = poll
        self.wake = gevent.event.Event()
        self.delivered = 0
        self.failed_attempts = 0

    def deliver_once(self) -> float:
        """Deliver what is due now; returns how long to wait before looking again (0: at once)."""
        url = self.receiver.url
        pending = self.run_db(lambda: self.store.heads(url))
        now = self.clock()
        waits = []
        progressed = False
        for d in heads(pending, self.may_deliver):
            due = d.get("next_attempt_at") or 0.0
            if due > now:
                waits.append(due - now)
                continue
            body = d["body"].encode("utf-8")
            error = self.post(body, request_headers(d["event"], d["delivery_id"], body, self.receiver.secret))
            now = self.clock()
            state, attempts, next_at = next_state(d, error is None, now, self.policy)
            self.run_db(lambda: self.store.record_attempt(
                d["id"], state=state, attempts=attempts, at=now, next_attempt_at=next_at, error=error))
            fields = dict(url=url, delivery_id=d["delivery_id"], webhook_event=d["event"], attempts=attempts)
            if state == "delivered":
                self.delivered += 1
                progressed = True
            elif state == "failed":
                self.failed_attempts += 1
                log.error("webhook delivery failed for 24 h; given up (fsbarge webhooks retry puts it back)", error=error, **fields)
            else:
                self.failed_attempts += 1
                progressed = True  # the next one of another intervention may be due
                log.warning("webhook delivery failed; will retry", error=error, retry_in=round(next_at - now, 1), **fields)  # type: ignore[operator]
        if progressed:
            return 0.0
        return min([self.poll, *waits])

    def run(self) -> None:
        while True:
            try:
                wait = self.deliver_once()
            except DatabaseError as exc:
                log.warning("cannot read the webhook outbox; retrying", url=self.receiver.url, error=str(exc))
                wait = DB_RETRY
            if wait > 0:
                self.wake.wait(wait)
            self.wake.clear()
            gevent.sleep(0)


class Deliverer:
    """Every receiver's loop, started and stopped together (the daemon owns one)."""

    def __init__(self, receivers: Sequence[Any], store: Any, **options: Any) -> None:
        self.loops = [ReceiverLoop(r, store, **options) for r in receivers]
        self.greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        self.greenlets = [gevent.spawn(loop.run) for loop in self.loops]

    def notify(self) -> None:
        """Something may have been queued: look now."""
        for loop in self.loops:
            loop.wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        gevent.killall(self.greenlets, timeout=timeout)
        self.greenlets = []
        for loop in self.loops:
            if isinstance(loop.post, HttpPoster):
                loop.post.close()
