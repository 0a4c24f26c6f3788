"""The read side's lightweight tables (fsbarge.queries) name only columns that exist, with the
same kind of type, in the models that the migrations are checked against."""

from __future__ import annotations

import pytest
from sqlalchemy import Boolean, DateTime, Integer, String

from fsbarge import models, queries
from fsbarge.models import UtcDateTime

PAIRS = [
    (queries.interventions, models.interventions),
    (queries.mode_changes, models.mode_changes),
    (queries.channels, models.channels),
    (queries.nodes, models.nodes),
]
KINDS = (Integer, String, Boolean, DateTime)


def kind(column_type: object) -> type:
    if isinstance(column_type, UtcDateTime):
        return DateTime
    return next(k for k in KINDS if isinstance(column_type, k))


@pytest.mark.parametrize("light, model", PAIRS, ids=[p[0].name for p in PAIRS])
def test_each_read_column_exists_in_the_model_with_the_same_kind_of_type(light, model) -> None:
    assert light.name == model.name
    for column in light.c:
        assert column.name in model.c, f"{light.name}.{column.name} is not in the schema"
        assert kind(column.type) is kind(model.c[column.name].type), f"{light.name}.{column.name}"


def test_the_check_can_fail() -> None:
    from sqlalchemy import column, table

    bogus = table("interventions", column("started_at", String), column("nope", String))
    with pytest.raises(AssertionError):
        test_each_read_column_exists_in_the_model_with_the_same_kind_of_type(bogus, models.interventions)
