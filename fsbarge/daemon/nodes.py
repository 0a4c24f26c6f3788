"""The nodes of one daemon: each node's service and link, built afresh whenever a node is served
again (a clean slate, like a restart), and the greenlets that run them while this instance serves
it. Apart from the composition root, which decides when a node is served (always with SQLite,
by the advisory locks with several instances) and how its parts are built."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import gevent

from fsbarge.config import NodeConfig
from fsbarge.daemon.esl.link import NodeLink
from fsbarge.daemon.service import NodeService

__all__ = ["NodeRuntime", "Nodes"]


@dataclass
class NodeRuntime:
    """One node's service and link, and the greenlets running them while this instance serves it."""

    config: NodeConfig
    service: NodeService
    link: NodeLink
    greenlets: list[gevent.Greenlet] = field(default_factory=list)
    used: bool = False


class Nodes:
    """Every configured node, served or not. ``build`` makes a node's parts; ``before_serving``
    runs before a node is served and may refuse (False: retried by whoever asked)."""

    def __init__(
        self, configs: Iterable[NodeConfig], build: Callable[[NodeConfig], NodeRuntime], before_serving: Callable[[str], bool],
    ) -> None:
        self._build = build
        self._before_serving = before_serving
        self.runtimes: dict[str, NodeRuntime] = {node.name: build(node) for node in configs}

    def __len__(self) -> int:
        return len(self.runtimes)

    def names(self) -> list[str]:
        return list(self.runtimes)

    @property
    def services(self) -> list[NodeService]:
        return [rt.service for rt in self.runtimes.values()]

    @property
    def links(self) -> list[NodeLink]:
        return [rt.link for rt in self.runtimes.values()]

    def serving(self) -> list[str]:
        """The nodes this instance serves now."""
        return [name for name, rt in self.runtimes.items() if rt.greenlets]

    def served_services(self) -> list[NodeService]:
        return [self.runtimes[name].service for name in self.serving()]

    def connected(self) -> list[str]:
        """The served nodes whose Event Socket session is up."""
        return [name for name in self.serving() if self.runtimes[name].service.session is not None]

    def serve(self, name: str) -> None:
        rt = self.runtimes[name]
        if rt.greenlets:
            return
        if rt.used:  # served before, then lost: start from a clean slate, like a restart
            rt = self.runtimes[name] = self._build(rt.config)
        if not self._before_serving(name):
            return
        rt.used = True
        svc, link = rt.service, rt.link
        rt.greenlets = [gevent.spawn(svc.run), gevent.spawn(svc.run_commands), gevent.spawn(link.run)]

    def unserve(self, name: str) -> None:
        rt = self.runtimes[name]
        rt.link.stop()
        gevent.killall(rt.greenlets, timeout=2)
        rt.greenlets = []

    def rebuild(self) -> None:
        """Every node from scratch (a fresh service and a resync, as after a restart); the served
        ones are served again at once."""
        for name, rt in list(self.runtimes.items()):
            serving = bool(rt.greenlets)
            if serving:
                self.unserve(name)
            self.runtimes[name] = self._build(rt.config)
            if serving:
                self.serve(name)

    def agent_node(self, agent: str, here: str) -> str | None:
        """Another node served here, connected, where the agent has a call (its channel table)."""
        for name, rt in self.runtimes.items():
            if name != here and rt.greenlets and rt.service.session is not None and rt.service.channels.agent_leg(agent):
                return name
        return None

    def kill(self, timeout: float) -> None:
        for rt in self.runtimes.values():
            gevent.killall(rt.greenlets, timeout=timeout)
