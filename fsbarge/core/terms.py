"""The product's vocabulary, spelled once (SPEC.md "The audit record"): every module that needs
one of these names imports it from here.

Each set is a ``Literal`` type (what a field may hold, for the type checker) and a constant per
term (what code writes: ``FREESWITCH_SHUTDOWN``, never the bare string), so a misspelt term is a
NameError, not a record nobody can find. The values are plain strings: they go to the journal,
the database, the logs and JSON as they always did. tests/test_architecture.py checks that no
other module spells a term as a bare string.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# Every mode a supervisor can be in: the three a feature code starts (*33 listen, *34 whisper,
# *35 barge), plus customer_whisper, reachable only with DTMF key 1.
LISTEN: Final = "listen"  # key 0: nobody hears the supervisor
WHISPER: Final = "whisper"  # key 2: the agent only
BARGE: Final = "barge"  # key 3: agent and customer
CUSTOMER_WHISPER: Final = "customer_whisper"  # key 1: the customer only
Mode = Literal["listen", "whisper", "barge", "customer_whisper"]
MODES: tuple[Mode, ...] = (LISTEN, WHISPER, BARGE, CUSTOMER_WHISPER)
DIAL_MODES: tuple[Mode, ...] = (LISTEN, WHISPER, BARGE)

# -- how an attempt turned out (audit `outcome`) ---------------------------------------------
ACTIVE: Final = "active"
COMPLETED: Final = "completed"
DENIED: Final = "denied"
NO_ACTIVE_CALL: Final = "no_active_call"
FAILED: Final = "failed"
Outcome = Literal["active", "completed", "denied", "no_active_call", "failed"]
OUTCOMES: tuple[Outcome, ...] = (ACTIVE, COMPLETED, DENIED, NO_ACTIVE_CALL, FAILED)
# outcomes of an attempt that never started eavesdrop (SPEC: ended_at == started_at)
REFUSED_OUTCOMES: frozenset[Outcome] = frozenset({DENIED, NO_ACTIVE_CALL})

# -- why an intervention ended (audit `end_reason`) -------------------------------------------
SUPERVISOR_HANGUP: Final = "supervisor_hangup"
CALL_ENDED: Final = "call_ended"  # the agent's call ended first (also a help request's outcome)
SUPERVISOR_LEFT: Final = "supervisor_left"  # key *
FREESWITCH_SHUTDOWN: Final = "freeswitch_shutdown"  # SHUTDOWN, SYSTEM_SHUTDOWN or a new Core-UUID
DAEMON_RESTART: Final = "daemon_restart"  # only when the daemon could not re-attach after its restart
EndReason = Literal["supervisor_hangup", "call_ended", "supervisor_left", "freeswitch_shutdown", "daemon_restart"]
END_REASONS: tuple[EndReason, ...] = (SUPERVISOR_HANGUP, CALL_ENDED, SUPERVISOR_LEFT, FREESWITCH_SHUTDOWN, DAEMON_RESTART)

# What a mode history may also say: the mode was unknown from `at` until the next entry. FreeSWITCH
# reports no eavesdrop mode, and keys pressed while the daemon was down (`daemon_down`) or cut off
# from FreeSWITCH (`connection_lost`) leave no trace; the re-attach that follows re-asserts the
# recorded mode. Not a mode anyone can be put in: teams' `modes` and the keys never name it.
UNKNOWN_MODE = "unknown"
HISTORY_MODES: tuple[str, ...] = (*MODES, UNKNOWN_MODE)  # every value of modes[].mode / seconds_by_mode

# -- where a mode entry came from (modes[].source) ---------------------------------------------
FEATURE_CODE: Final = "feature_code"  # also an origin
DTMF: Final = "dtmf"
REATTACH: Final = "reattach"
HELP_REQUEST: Final = "help_request"  # also an origin
DAEMON_DOWN: Final = "daemon_down"
CONNECTION_LOST: Final = "connection_lost"
GapSource = Literal["daemon_down", "connection_lost"]
GAP_SOURCES: tuple[GapSource, ...] = (DAEMON_DOWN, CONNECTION_LOST)
ModeSource = Literal["feature_code", "dtmf", "reattach", "help_request", "daemon_down", "connection_lost"]
MODE_SOURCES: tuple[ModeSource, ...] = (FEATURE_CODE, DTMF, REATTACH, HELP_REQUEST, *GAP_SOURCES)

# -- how an intervention began (audit `origin`), and help requests (SPEC.md "Help requests") ---
# reconstructed: rebuilt from its later changes after the journal line that opened it was damaged
RECONSTRUCTED: Final = "reconstructed"
Origin = Literal["feature_code", "help_request", "reconstructed"]
ORIGINS: tuple[Origin, ...] = (FEATURE_CODE, HELP_REQUEST, RECONSTRUCTED)
ANSWERED: Final = "answered"
UNANSWERED: Final = "unanswered"
NO_SUPERVISOR: Final = "no_supervisor"
HelpOutcome = Literal["answered", "unanswered", "call_ended", "no_supervisor"]
HELP_OUTCOMES: tuple[HelpOutcome, ...] = (ANSWERED, UNANSWERED, CALL_ENDED, NO_SUPERVISOR)
PHONE: Final = "phone"
EXTERNAL: Final = "external"
HelpSource = Literal["phone", "external", "reconstructed"]
HELP_SOURCES: tuple[HelpSource, ...] = (PHONE, EXTERNAL, RECONSTRUCTED)
# Who a notification tone can reach (mode history `notified`).
NotifyParty = Literal["agent", "customer"]
NOTIFY_PARTIES: tuple[NotifyParty, ...] = get_args(NotifyParty)
# What a webhook says happened (fsbarge.daemon.outbox: one per audit change)
INTERVENTION_STARTED: Final = "intervention.started"
INTERVENTION_MODE_CHANGED: Final = "intervention.mode_changed"
INTERVENTION_ENDED: Final = "intervention.ended"
INTERVENTION_REFUSED: Final = "intervention.refused"
HELP_REQUESTED: Final = "help.requested"
HELP_ANSWERED: Final = "help.answered"
HELP_UNANSWERED: Final = "help.unanswered"
WebhookEvent = Literal[
    "intervention.started", "intervention.mode_changed", "intervention.ended", "intervention.refused",
    "help.requested", "help.answered", "help.unanswered",
]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = (
    INTERVENTION_STARTED, INTERVENTION_MODE_CHANGED, INTERVENTION_ENDED, INTERVENTION_REFUSED,
    HELP_REQUESTED, HELP_ANSWERED, HELP_UNANSWERED,
)

#: every set above whose values are spelled only here (tests/test_architecture.py checks)
CHECKED: tuple[tuple[str, ...], ...] = (
    MODES, OUTCOMES, END_REASONS, MODE_SOURCES, ORIGINS, HELP_OUTCOMES, HELP_SOURCES, WEBHOOK_EVENTS,
)
