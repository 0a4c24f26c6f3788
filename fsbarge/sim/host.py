"""What the simulator's parts need of each other, named, so none reaches into another's privates.

- The :class:`fsbarge.sim.pbx.Pbx` is built from mixins (apps, hangup, network, originate), split
  only to keep modules small. Each mixin says here what it uses of the Pbx it runs on
  (``AppsHost``, ``HangupHost``, ...): public members only. A mixin subclasses its host Protocol
  for the type checker alone (``class HangupMixin(HangupHost if TYPE_CHECKING else object)``), so
  at run time nothing but the Pbx supplies them. tests/test_architecture.py checks that a mixin
  uses nothing of ``self`` beyond its own members and its host's.
- The Event Socket side (server.py, connection.py, protocol.py) sees the simulator as an
  :class:`EslHost`; :class:`fsbarge.sim.simulator.FreeSwitchSim` is one. This module imports
  neither, so ``sim/`` has no import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .headers import EventFactory
from .model import Channel, Frame, User
from .wire import Command, Event

__all__ = ["AppsHost", "EslHost", "HangupHost", "NetworkHost", "OriginateHost", "PbxCore"]


class PbxCore(Protocol):
    """The channel life cycle every mixin uses: the channels, the clock, and the changes that fire
    events (state, call state, presence, codecs, answer, hang-up, the application pump)."""

    channels: dict[str, Channel]
    directory: dict[str, User]
    clock: Callable[[], float]

    def fire(self, name: str, ch: Channel | None = None, **kw: Any) -> Event: ...
    def now_us(self) -> int: ...
    def set_state(self, ch: Channel, state: str, number: int | None = None, fire: bool = True) -> None: ...
    def set_callstate(self, ch: Channel, new: str) -> None: ...
    def presence_in(self, ch: Channel, status: str, info_state: str) -> None: ...
    def codec_events(self, ch: Channel) -> None: ...
    def new_session_id(self) -> str: ...
    def count_session(self) -> None: ...
    def mark_answered(self, ch: Channel) -> None: ...
    def bridge_failed(self, a: Channel, frame: Frame, cause: str) -> str | None: ...
    def pump(self, ch: Channel) -> None: ...
    def hangup_channel(self, ch: Channel, cause: str = "NORMAL_CLEARING",
                       after_mark: Callable[[], None] | None = None, remote: bool = False) -> None: ...


class AppsHost(PbxCore, Protocol):
    """What the applications (apps.py) use beyond the core: ground-truth logs for tests, the event
    factory, the settings of playback, the hash table, and the bridge's two kinds of dial."""

    factory: EventFactory
    emit: Callable[[Event], None]
    eavesdrop_log: dict[str, dict[str, Any]]
    delivered: dict[str, list[str]]
    playback_seconds: float
    hash: dict[str, dict[str, str]]

    def digits_to_network(self, ch: Channel, digit: str, duration: int | None) -> None: ...
    def originate_user(self, a: Channel, frame: Frame, ext: str, b_uuid: str | None) -> str | None: ...
    def originate_sip(self, a: Channel, frame: Frame, profile: str, user: str, address: str,
                      params: dict[str, str]) -> str | None: ...


class HangupHost(PbxCore, Protocol):
    """What a hang-up (hangup.py) unwinds: applications, eavesdrops, calls to other nodes, originates."""

    def complete(self, ch: Channel, frame: Frame, response: str) -> None: ...
    def end_eavesdrop(self, ch: Channel, cause: str = "supervisor_hangup") -> None: ...
    def stop_eavesdroppers(self, target: Channel) -> None: ...
    def playback_headers(self, path: str) -> list[tuple[str, str]]: ...
    def send_bye(self, uuid: str, cause: str) -> None: ...
    def originate_failed(self, ch: Channel, cause: str) -> None: ...


class NetworkHost(PbxCore, Protocol):
    """What a call from another node (network.py) does here: dial our dialplan, press digits."""

    def dial(self, ext: str, dest: str, authenticated: bool = True, uuid: str | None = None,
             b_uuid: str | None = None, caller_id_name: str | None = None, trunk: bool = False) -> Channel: ...
    def press(self, ch: Channel, digits: str, source: str = "RTP", duration: int | None = None) -> None: ...


class OriginateHost(PbxCore, Protocol):
    """What an answered originate (originate.py) runs: the dialplan of its extension."""

    def route(self, ch: Channel) -> list[tuple[str, str]] | None: ...


class SessionCommands(Protocol):
    """The Pbx as the Event Socket commands reach it (sendmsg, sendevent, BACKGROUND_JOB)."""

    def queue_sendmsg(self, cmd: Command) -> tuple[str, Channel | None]: ...
    def pump(self, ch: Channel) -> None: ...
    def sendevent(self, cmd: Command) -> str: ...
    def fire(self, name: str, ch: Channel | None = None, **kw: Any) -> Event: ...


class ApiCommands(Protocol):
    """``api``/``bgapi``: (output, found); an originate's output is its job, the result comes later."""

    def execute(self, cmd: str, arg: str | None) -> tuple[Any, bool]: ...


class EslHost(Protocol):
    """The simulator as its Event Socket server sees it: the password and failure switches, the
    PBX and api the commands run on (both replaced when FreeSWITCH restarts), and the hooks that
    wake the waiters."""

    password: str
    reject_auth: bool
    silent: bool
    disconnect_on_next_command: bool
    errors: list[BaseException]

    @property
    def pbx(self) -> SessionCommands: ...
    @property
    def api(self) -> ApiCommands: ...
    def changed(self) -> None: ...
    def record_command(self, conn_id: int, cmd: Command) -> None: ...
    def wait_unstalled(self) -> None: ...
