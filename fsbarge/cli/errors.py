"""The two ways a command fails on purpose; main() turns them into one line and an exit code."""

from __future__ import annotations


class UsageError(Exception):
    """Bad command line: exit status 2."""


class CommandError(Exception):
    """A command that could not do its work (e.g. write its output): exit status 1."""
