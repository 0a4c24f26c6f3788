"""The vocabulary: each Literal type and its tuple of named terms say the same thing."""

from __future__ import annotations

from typing import get_args

import pytest

from fsbarge.read import auditstats
from fsbarge.core import terms


@pytest.mark.parametrize(("literal", "values"), [
    (terms.Outcome, terms.OUTCOMES),
    (terms.EndReason, terms.END_REASONS),
    (terms.ModeSource, terms.MODE_SOURCES),
    (terms.GapSource, terms.GAP_SOURCES),
    (terms.Origin, terms.ORIGINS),
    (terms.HelpOutcome, terms.HELP_OUTCOMES),
    (terms.HelpSource, terms.HELP_SOURCES),
    (terms.Mode, terms.MODES),
    (terms.WebhookEvent, terms.WEBHOOK_EVENTS),
])
def test_a_literal_type_and_its_terms_agree(literal: object, values: tuple[str, ...]) -> None:
    assert get_args(literal) == values


def test_refused_outcomes_are_outcomes() -> None:
    assert terms.REFUSED_OUTCOMES < set(terms.OUTCOMES)


def test_the_summary_shows_every_outcome_once() -> None:
    assert sorted(auditstats.OUTCOME_ORDER) == sorted(terms.OUTCOMES)
