"""A FreeSWITCH simulator speaking the inbound Event Socket protocol, for tests and `make demo`.

Independent of the rest of fsbarge on purpose (stdlib + gevent only), so that the daemon's parser
is tested against a second implementation of the wire format. Held to the real captures in
../shared/fixtures/esl-captures (tests/test_sim_fidelity.py).

    sim = FreeSwitchSim(password="ClueCon").start()      # 127.0.0.1, ephemeral sim.port
    call = sim.place_call("1001", "1000")                # customer -> agent: call.a_uuid, call.b_uuid
    sup = sim.dial("1002", "*331000")                    # answer, set fsbarge_*, park
    ... the daemon sends sendmsg <sup> execute eavesdrop <call.b_uuid> ...
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "listen")
    sim.press(sup, "2")                                  # RFC2833 digit: DTMF event, mode 'whisper'
    sim.hangup(sup); sim.stop()

    sim.press(call.b_uuid, "*9")                         # once the daemon has bound *9: CUSTOM fsbarge::help
    [leg] = sim.ringing("1002")                          # a phone rung by `originate ... user/1002 &park()`
    sim.answer(leg)                                      # it answers and parks (or: originate_timeout, uuid_kill)

Modules: wire (framing, URL-encoding), headers (event header layout), model (data), legs (leg
variables), pbx/apps/hangup/network/originate (call behaviour), host (what those parts and the
server need of each other, as Protocols), api (api commands), protocol (ESL commands), connection
(one client's subscriptions and output), server (sockets), simulator (control API, failure modes),
hub (threaded mode), malformed (hostile frames). The imports form no circle
(tests/test_architecture.py).
"""

from .model import Channel, User
from .pbx import Call
from .simulator import ClientInfo, FreeSwitchSim
from .wire import Event, url_encode

__all__ = ["Call", "Channel", "ClientInfo", "Event", "FreeSwitchSim", "User", "url_encode"]
