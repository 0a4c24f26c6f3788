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
# What a mode history may also say: the mode was unknown from `at` until the next entry. FreeSWITCH
# reports no eavesdrop mode, and keys pressed while the daemon was down (`daemon_down`) or cut off
# from FreeSWITCH (`connection_lost`) leave no trace; the re-attach that follows re-asserts the
# recorded mode. Not a mode anyone can be put in: teams' `modes` and the keys never name it.
UNKNOWN_MODE = "unknown"
HISTORY_MODES: tuple[str, ...] = (*MODES, UNKNOWN_MODE)  # every value of modes[].mode / seconds_by_mode
GAP_SOURCES = ("daemon_down", "connection_lost")
MODE_SOURCES = ("feature_code", "dtmf", "reattach", "help_request", *GAP_SOURCES)

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
