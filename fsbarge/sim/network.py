"""SIP calls between simulated nodes: ``bridge sofia/<profile>/<user>@<host:port>`` where that
address is another simulator of this process (a cross-node barge, fsbarge.core.crossnode).

What each side shows follows FreeSWITCH: on the calling node an outbound sofia leg bridged to
the caller (hung up with it: hangup_after_bridge), on the called node an inbound leg from the
``external`` profile (context ``public``, no directory user) that runs the called node's
dialplan. RFC 2833 digits the caller's phone sends reach the called leg as DTMF; a BYE on either
side ends the other. Nodes must share one gevent hub (not ``threaded``): each hop is a greenlet,
as the network would be. A mixin of :class:`fsbarge.sim.pbx.Pbx`, using it as a
:class:`fsbarge.sim.host.NetworkHost`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import gevent

from .host import NetworkHost
from .model import DOMAIN, Channel, Frame, Profile, new_uuid

if TYPE_CHECKING:  # the type checker sees what the mixin may use of its host; at run time the Pbx supplies it
    _Host = NetworkHost
else:
    _Host = object

__all__ = ["NETWORK", "NetworkMixin", "SOFIA_DIAL", "CROSS_NODE"]

# address ("host:port") -> the node (its Pbx) reached there
NETWORK: dict[str, NetworkMixin] = {}
SOFIA_DIAL = re.compile(r"sofia/([^/]+)/([^@/]+)@([^/;]+)")
# freeswitch-conf/dialplan/public/01_fsbarge_node.xml
CROSS_NODE = re.compile(r"fsbarge-([0-9a-f]{32})")


class NetworkMixin(_Host):
    """The calls of one simulated node to and from the other nodes of the process."""

    sip_address: str | None = None
    # addresses allowed to send cross-node calls here (the drop-in's ACL); None: every node
    node_acl: set[str] | None = None
    links: dict[str, tuple[NetworkMixin, str]]  # local leg uuid -> (the other node, its leg's uuid); Pbx.__init__

    def join_network(self, address: str) -> None:
        self.sip_address = address
        NETWORK[address] = self

    def leave_network(self) -> None:
        if self.sip_address is not None and NETWORK.get(self.sip_address) is self:
            del NETWORK[self.sip_address]

    # -- the calling node ------------------------------------------------------------------
    def originate_sip(self, a: Channel, frame: Frame, profile: str, user: str, address: str,
                      params: dict[str, str]) -> str | None:
        """bridge to another node: an outbound leg here, an INVITE there; returns None while it runs."""
        other = NETWORK.get(address)
        if other is None:
            # No SIP answer at all: sofia gives up after its timers.
            return self.bridge_failed(a, frame, "RECOVERY_ON_TIMER_EXPIRE")
        x_uuid, y_uuid = new_uuid(), new_uuid()
        cid_num = params.get("origination_caller_id_number", a.profile.caller_id_number)
        cid_name = params.get("origination_caller_id_name", a.profile.caller_id_name)
        name = f"sofia/{profile}/{user}@{address}"
        us = self.now_us()
        x = Channel(x_uuid, name, "outbound",
                    Profile("outbound", a.profile.username, cid_name, cid_num, user, x_uuid, name, us,
                            ani=cid_num, callee_id_name="Outbound Call", callee_id_number=user),
                    "", self.clock(), hit_dialplan=False, call_uuid=x_uuid, runs_dialplan=False, show_profile=True)
        x.to_node = True
        x.other_type = "originator"
        x.other_profile = a.profile.copy(created=0, answered=0, progress=0)
        x.initial = {"cid_name": cid_name, "cid_num": cid_num, "ip_addr": DOMAIN, "dest": user}
        x.variables.update({
            "direction": "outbound", "is_outbound": "true", "uuid": x_uuid, "session_id": self.new_session_id(),
            "channel_name": name, "originator": a.uuid, "signal_bond": a.uuid, "call_uuid": a.uuid,
            "origination_uuid": x_uuid, "originate_endpoint": "sofia", "sip_profile_name": profile,
            "sofia_profile_name": profile, "sip_req_uri": f"{user}@{address}", "sip_to_host": address,
        })
        self.channels[x_uuid] = x
        self.count_session()
        self.set_state(x, "CS_INIT", 1)
        self.fire("CHANNEL_CREATE", x)
        self.fire("CHANNEL_ORIGINATE", x)
        x.bridged_call_uuid = a.uuid
        self.set_state(x, "CS_ROUTING", 2)
        self.set_state(x, "CS_CONSUME_MEDIA", 7)
        self.codec_events(x)
        a.ringing_peer = x_uuid
        self.links[x_uuid] = (other, y_uuid)
        other.links[y_uuid] = (self, x_uuid)
        gevent.spawn(other.receive_sip, y_uuid, cid_num, cid_name, user)
        return None

    def answered_there(self, x_uuid: str) -> None:
        """The other node answered: answer our outbound leg and bridge the caller to it."""
        x = self.channels.get(x_uuid)
        a = self.channels.get(x.variables.get("originator", "")) if x is not None else None
        if x is None or a is None or not x.alive or not a.alive or a.ringing_peer != x_uuid:
            return
        a.ringing_peer = None
        self.mark_answered(x)
        a.variables.update({"originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS", "signal_bond": x_uuid,
                            "bridge_to": x_uuid, "last_bridge_to": x_uuid, "bridge_channel": x.name})
        x.variables.update({"bridge_to": a.uuid, "last_bridge_to": a.uuid, "endpoint_disposition": "ANSWER"})
        a.peer, x.peer = x_uuid, a.uuid
        a.originator = True
        a.bridged_call_uuid = x.bridged_call_uuid = a.uuid
        a.other_type = "originatee"
        a.other_profile = x.profile.copy(logical_direction="inbound")
        a.profile.bridged = x.profile.bridged = self.now_us()
        self.fire("CHANNEL_BRIDGE", a, pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", x_uuid)])
        self.set_state(x, "CS_EXCHANGE_MEDIA", 5)

    # -- the called node -------------------------------------------------------------------
    def receive_sip(self, y_uuid: str, cid_num: str, cid_name: str, user: str) -> None:
        """The INVITE from another node arrives on the external profile and runs our dialplan."""
        if y_uuid not in self.links:
            return  # the caller gave up while the INVITE was on its way
        # (no route: the leg hangs up at once, which answers the caller with the cause)
        self.dial(cid_num, user, authenticated=False, uuid=y_uuid, caller_id_name=cid_name, trunk=True)

    def cross_node_route(self, ch: Channel) -> list[tuple[str, str]] | None:
        """The fsbarge_node drop-in: a token call from an allowed node is answered and parked."""
        m = CROSS_NODE.fullmatch(ch.profile.destination_number)
        if m is None or ch.uuid not in self.links:
            return None
        source = self.links[ch.uuid][0].sip_address
        if self.node_acl is not None and source not in self.node_acl:
            return None
        return [("answer", ""), ("set", f"fsbarge_ticket={m[1]}"), ("park", "")]

    # -- both --------------------------------------------------------------------------------
    def leg_answered(self, ch: Channel) -> None:
        """Our inbound leg from another node answered: 200 OK to the caller."""
        link = self.links.get(ch.uuid)
        if link is not None and ch.direction == "inbound":
            other, x_uuid = link
            gevent.spawn(other.answered_there, x_uuid)

    def send_bye(self, uuid: str, cause: str) -> None:
        """Our leg of a call with another node went down: BYE (or CANCEL, or an error reply) there."""
        link = self.links.pop(uuid, None)
        if link is not None:
            other, their = link
            other.links.pop(their, None)
            gevent.spawn(other.bye_from_network, their, cause)

    def bye_from_network(self, uuid: str, cause: str) -> None:
        ch = self.channels.get(uuid)
        if ch is not None and ch.alive:
            self.hangup_channel(ch, cause, remote=True)

    def digits_to_network(self, ch: Channel, digit: str, duration: int | None) -> None:
        """RFC 2833 from the phone of a leg bridged to a call to another node goes on to that node."""
        peer = self.channels.get(ch.peer) if ch.peer else None
        link = self.links.get(peer.uuid) if peer is not None else None
        if link is not None:
            other, their = link
            gevent.spawn(other.digits_from_network, their, digit, duration)

    def digits_from_network(self, uuid: str, digit: str, duration: int | None) -> None:
        ch = self.channels.get(uuid)
        if ch is not None and ch.alive:
            self.press(ch, digit, "RTP", duration)

