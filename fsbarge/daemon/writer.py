"""The command writer of one node: queued commands out to FreeSWITCH in order, replies checked.

Writes do not wait for the replies to earlier writes (FreeSWITCH answers in order); a greenlet
of its own matches the replies to the commands and reports the refusals. A lost session drops
what it cannot send: the audit was journaled before anything was queued.

A refusal is logged, not handed back to the core as an event: FreeSWITCH refuses these commands
when their channel is already gone (a sendmsg answers ``-ERR invalid session id``), and the core
learns that from the channel's own hang-up events, which say when and why; a stop of a tone that
already ended is not a refusal at all (``STOP_TONE_GONE``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.queue

from fsbarge.core.commands import STOP_TONE_GONE
from fsbarge.daemon.counts import NodeCounts
from fsbarge.daemon.esl.connection import ConnectionLost
from fsbarge.daemon.esl.session import EslSession

__all__ = ["CommandWriter", "Queued"]

#: (channel, command text, when the CHANNEL_PARK it answers was read, if it starts an eavesdrop)
Queued = tuple[str, str, float | None]
_Written = tuple[list[Queued], Callable[[], list[str]]]


class CommandWriter:
    """Writes what the effect interpreter queues, on the session the loop holds now."""

    def __init__(
        self,
        *,
        session: Callable[[], EslSession | None],
        may_act: Callable[[], bool],
        stats: NodeCounts,
        log: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue: gevent.queue.Queue[Queued] = gevent.queue.Queue()
        self.session = session
        self.may_act = may_act
        self.stats = stats
        self.log = log
        self.clock = clock

    def put(self, uuid: str, text: str, parked_at: float | None) -> None:
        self.queue.put((uuid, text, parked_at))

    def run(self) -> None:
        """The command greenlet: write queued commands in order, as soon as they are queued."""
        queue = self.queue
        replies: gevent.queue.Queue[_Written] = gevent.queue.Queue()
        checker = gevent.spawn(self._check_replies, replies)
        try:
            while True:
                batch = [queue.get()]
                while True:
                    try:
                        batch.append(queue.get_nowait())
                    except gevent.queue.Empty:
                        break
                self._write(batch, replies)
        finally:
            checker.kill()

    def _write(self, batch: list[Queued], replies: gevent.queue.Queue[_Written]) -> None:
        session = self.session()
        if session is None:
            for uuid, text, _parked in batch:
                self.log.warning("not connected; command not sent", uuid=uuid, command=text.split("\n", 1)[0])
            return
        if not self.may_act():
            self.log.warning("this instance no longer holds the node; commands not sent", count=len(batch))
            return
        try:
            replies.put((batch, session.write([text for _, text, _parked in batch])))
        except ConnectionLost as exc:
            self.log.warning("commands lost with the connection", count=len(batch), error=str(exc))
            return
        written = self.clock()
        for _uuid, _text, parked in batch:
            if parked is not None:
                self.stats.barge_latency.observe(max(0.0, written - parked))

    def _check_replies(self, replies: gevent.queue.Queue[_Written]) -> None:
        while True:
            batch, wait = replies.get()
            try:
                answers = wait()
            except ConnectionLost as exc:
                self.log.warning("commands lost with the connection", count=len(batch), error=str(exc))
                continue
            for (uuid, text, _parked), reply in zip(batch, answers, strict=True):
                if not reply.startswith("+OK") and not reply.startswith(STOP_TONE_GONE):
                    self.log.warning("FreeSWITCH refused a command", uuid=uuid, command=text.split("\n")[:3], reply=reply)
