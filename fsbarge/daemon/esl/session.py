"""Commands on one authenticated Event Socket connection: ``api``, ``sendmsg`` and the like, each under a timeout.

Replies are matched to commands in the order they were written (fsbarge.daemon.esl.connection), so a
command that gets no reply in time drops the whole connection: after a lost reply nothing can be
trusted, and fsbarge.daemon.esl.link reconnects and the service resynchronises.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import gevent.event

from fsbarge.config import NodeConfig
from fsbarge.core.wire import Frame
from fsbarge.daemon.esl.connection import CommandTimeout, Connection, ConnectionLost

__all__ = ["EslSession", "reply_text", "send_once"]


def reply_text(frame: Frame) -> str:
    """What a command's reply says (``+OK ...`` / ``-ERR ...``): command/reply frames answer in
    Reply-Text, api/response frames in their body."""
    return frame.headers.get("Reply-Text") or frame.body.decode("utf-8", "replace").strip()


class EslSession:
    """One authenticated, subscribed connection. Commands raise ConnectionLost when it is gone."""

    def __init__(self, inbound: Connection, node: NodeConfig) -> None:
        self._esl = inbound
        self.node = node
        self.lost = gevent.event.Event()

    @property
    def connected(self) -> bool:
        return self._esl.connected

    @property
    def lost_reason(self) -> str | None:
        return self._esl.lost_reason

    def silent_for(self) -> float:
        """Seconds since anything at all (an event, a reply) was read on this connection."""
        return time.monotonic() - self._esl.last_read

    def probe(self) -> bool:
        """Ask FreeSWITCH something cheap (``api status``) after a silence: True if it answered.

        No reply within ``command_timeout``: False, and the connection is dropped with a reason
        saying how long FreeSWITCH has been silent (the socket may stay open for ever: TCP notices
        nothing when the other end hangs, or a firewall drops the flow without a reset).
        ConnectionLost if the connection went some other way meanwhile.
        """
        try:
            self._esl.send_many(["api status"], self.node.command_timeout)
        except CommandTimeout:
            self._esl.lose(f"no event or reply from FreeSWITCH for {self.silent_for():.0f} s; reconnecting")
            return False
        return True

    def set_write_hook(self, hook: Callable[[list[str]], None] | None) -> None:
        """Call ``hook(commands)`` right after commands are written (benchmarks measure with it)."""
        self._esl.on_written = hook

    def _send(self, texts: list[str], timeout: float | None = None) -> list[Frame]:
        try:
            return self._esl.send_many(texts, timeout or self.node.command_timeout)
        except CommandTimeout:
            self._esl.lose("command timed out; reconnecting to resynchronise")
            raise

    def command(self, text: str, timeout: float | None = None) -> str:
        """Send one command; return its Reply-Text (``+OK ...`` / ``-ERR ...``)."""
        return self._send([text], timeout)[0].headers.get("Reply-Text", "")

    def write(self, texts: list[str]) -> Callable[[], list[str]]:
        """Write commands now; return a function that waits for their replies (``+OK ...`` / ``-ERR ...``).

        Lets the caller write the next commands before these are answered.
        """
        results = self._esl.write_many(texts)

        def replies() -> list[str]:
            try:
                frames = self._esl.wait_replies(results, self.node.command_timeout)
            except CommandTimeout:
                self._esl.lose("command timed out; reconnecting to resynchronise")
                raise
            return [reply_text(f) for f in frames]

        return replies

    def api(self, cmd: str, timeout: float | None = None) -> str:
        """``api`` command; returns the body (FreeSWITCH reports failures as ``-ERR ...`` bodies)."""
        return self.api_bytes(cmd, timeout).decode("utf-8", "replace")

    def apis(self, cmds: list[str], chunk: int = 500) -> list[str]:
        """Several ``api`` commands pipelined (written together, answered in order): one round
        trip per ``chunk`` instead of one per command."""
        out: list[str] = []
        for i in range(0, len(cmds), chunk):
            frames = self._send([f"api {c}" for c in cmds[i : i + chunk]])
            out += [f.body.decode("utf-8", "replace") for f in frames]
        return out

    def api_bytes(self, cmd: str, timeout: float | None = None) -> bytes:
        """``api`` command, raw body (a 10,000-channel ``show channels`` is megabytes: no copies)."""
        return self._send([f"api {cmd}"], timeout)[0].body

    def close(self) -> None:
        self._esl.close()


def send_once(node: NodeConfig, texts: list[str]) -> list[str]:
    """Connect, authenticate, send ``texts`` and return their replies, then close (for a CLI
    command such as `fsbarge help request`). ConnectError on failure."""
    inbound = Connection(node.host, node.port, node.password, node.connect_timeout, lambda ev: None, lambda reason: None)
    try:
        with gevent.Timeout(node.connect_timeout, ConnectionLost(f"no answer within {node.connect_timeout:g} s")):
            inbound.connect()
        frames = inbound.send_many(texts, node.command_timeout)
        return [reply_text(f) for f in frames]
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {node.host}:{node.port}: {exc.strerror or exc}") from None
    finally:
        inbound.close()
