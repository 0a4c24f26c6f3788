"""The `fsbarge` command's help texts: what a command group is, and examples of each QA command.

Plain text for argparse's RawDescriptionHelpFormatter (wrapped here, kept as written). The
examples use only options that exist; tests/test_cli_qa.py runs `--help` on each command.
"""

from __future__ import annotations

__all__ = [
    "HELP_DESCRIPTION", "HELP_EPILOG", "HELP_LIST_EPILOG", "LIST_EPILOG", "MAIN_EPILOG", "REPORT_EPILOG", "STATS_EPILOG",
]

MAIN_EPILOG = """\
Help on a command: fsbarge COMMAND --help (e.g. fsbarge audit list --help).
`fsbarge help` is not that: it is the agents' help requests (*9 on the phone),
listed with `fsbarge help list` and raised with `fsbarge help request --agent EXT`."""

_TIMES = """\
Filters combine with AND. --since and --until take a date or a date and time
(ISO 8601), read in --tz (UTC unless given) when they carry no offset (Z, +01:00);
--until is exclusive."""

LIST_EPILOG = f"""\
examples:
  fsbarge audit list                                 newest first, a page of 50
  fsbarge audit list --agent 1000 --since 2026-11-01 --until 2026-12-01
  fsbarge audit list --supervisor 1002 --mode barge --limit 20
  fsbarge audit list --format csv --outcome denied > refused.csv
  fsbarge audit list --tz Europe/Paris --since 2026-11-02T08:00   from 08:00 in Paris

{_TIMES}"""

STATS_EPILOG = f"""\
examples:
  fsbarge audit stats --by team --since 2026-11-01 --until 2026-12-01
  fsbarge audit stats --by agent --supervisor 1002 --format csv > agents.csv
  fsbarge audit stats --by day --tz Europe/Paris      days from midnight to midnight in Paris

{_TIMES}"""

REPORT_EPILOG = f"""\
examples:
  fsbarge report --since 2026-11-01 --until 2026-12-01 -o november.html
  fsbarge report --agent 1000 --tz local -o agent-1000.html

{_TIMES}"""

HELP_DESCRIPTION = """\
Agents' help requests: an agent presses *9 on the phone (or a tool runs
`fsbarge help request`), the supervisors of the agent's teams ring, and the first
to answer whispers to the agent. Not help about fsbarge itself: for that,
`fsbarge --help` or `fsbarge COMMAND --help`."""

HELP_EPILOG = """\
examples:
  fsbarge help list --outcome unanswered --since 2026-11-01
  fsbarge help request --agent 1000 --reason "negative sentiment"
"""

HELP_LIST_EPILOG = """\
examples:
  fsbarge help list --agent 1000 --since 2026-11-01
  fsbarge help list --outcome unanswered --format csv > unanswered.csv

--since and --until: a date or a date and time (ISO 8601), in --tz unless they carry
an offset; --until is exclusive."""
