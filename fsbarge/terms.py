"""The product's vocabulary, spelled once (SPEC.md "The audit record"): every module that needs
one of these names imports it from here."""

from __future__ import annotations

from typing import Literal, get_args

# Every mode a supervisor can be in: the three a feature code starts (*33 listen, *34 whisper,
# *35 barge), plus customer_whisper, reachable only with DTMF key 1.
Mode = Literal["listen", "whisper", "barge", "customer_whisper"]
MODES: tuple[Mode, ...] = get_args(Mode)
DIAL_MODES: tuple[Mode, ...] = ("listen", "whisper", "barge")

OUTCOMES = ("active", "completed", "denied", "no_active_call", "failed")
# outcomes of an attempt that never started eavesdrop (SPEC: ended_at == started_at)
REFUSED_OUTCOMES = frozenset({"denied", "no_active_call"})

END_REASONS = ("supervisor_hangup", "call_ended", "supervisor_left", "freeswitch_shutdown", "daemon_restart")
MODE_SOURCES = ("feature_code", "dtmf", "reattach", "help_request")

# How an intervention began (audit `origin`), and help requests (SPEC.md "Help requests").
# reconstructed: rebuilt from its later changes after the journal line that opened it was damaged
ORIGINS = ("feature_code", "help_request", "reconstructed")
HELP_OUTCOMES = ("answered", "unanswered", "call_ended", "no_supervisor")
HELP_SOURCES = ("phone", "external", "reconstructed")
# Who a notification tone can reach (mode history `notified`).
NOTIFY_PARTIES = ("agent", "customer")
WEBHOOK_EVENTS = (
    "intervention.started", "intervention.mode_changed", "intervention.ended", "intervention.refused",
    "help.requested", "help.answered", "help.unanswered",
)
