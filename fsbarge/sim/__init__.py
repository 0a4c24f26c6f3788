"""A FreeSWITCH simulator speaking the inbound Event Socket protocol, for tests and `make demo`.

Independent of the rest of fsbarge on purpose (stdlib + gevent only), so that the daemon's parser
is tested against a second implementation of the wire format. Held to the real captures in
../shared/fixtures/esl-captures.
"""

from .model import Channel, User
from .pbx import Call
from .simulator import ClientInfo, FreeSwitchSim
from .wire import Event, url_encode

__all__ = ["Call", "Channel", "ClientInfo", "Event", "FreeSwitchSim", "User", "url_encode"]
