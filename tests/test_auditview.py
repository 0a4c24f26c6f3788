"""fsbarge.read.auditview: pure record building, renderings and time parsing (no database)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsbarge.read import auditview as av

T = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc).timestamp()


def row(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": 17,
        "node": "pbx1",
        "supervisor": "1002",
        "supervisor_uuid": "c5c83ace-sup",
        "agent": "1000",
        "target_uuid": "e8ba682b-agent",
        "customer": "1001",
        "requested_mode": "listen",
        "outcome": "completed",
        "reason": None,
        "started_at": datetime(2026, 11, 22, 10, 0, 0, 123000),
        "ended_at": datetime(2026, 11, 22, 10, 1, 30, 456000),
        "end_reason": "supervisor_hangup",
        "current_mode": "whisper",  # internal: not part of the record
        "application_uuid": "app-1",
    }
    base.update(over)
    return base


def mode(name: str, at: object, source: str = "dtmf", refused: bool = False) -> dict[str, object]:
    return {"mode": name, "at": at, "source": source, "refused": refused}


SPEC_MODES = [
    mode("listen", datetime(2026, 11, 22, 10, 0, 0, 200000), "feature_code"),
    mode("whisper", datetime(2026, 11, 22, 10, 0, 12)),
]


def spec_record() -> dict[str, object]:
    return av.record(row(), SPEC_MODES)


def denied_record() -> dict[str, object]:
    started = datetime(2026, 11, 22, 10, 5)
    return av.record(
        row(id=18, outcome="denied", reason="mode_not_allowed", requested_mode="barge",
            started_at=started, ended_at=started, end_reason=None, customer=None),
        [],
    )


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (T + 0.123, "2026-11-22T10:00:00.123Z"),
        (T, "2026-11-22T10:00:00.000Z"),
        (T + 0.9996, "2026-11-22T10:00:01.000Z"),
        (datetime(2026, 11, 22, 10, 0, 0, 123000), "2026-11-22T10:00:00.123Z"),
        (datetime(2026, 11, 22, 11, 0, 0, 123000, tzinfo=timezone(timedelta(hours=1))),
         "2026-11-22T10:00:00.123Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_iso_is_utc_with_milliseconds_and_z(value: object, expected: str | None) -> None:
    assert av.iso(value) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-22", datetime(2026, 11, 22)),
        ("2026-11-22T10:00", datetime(2026, 11, 22, 10, 0)),
        ("2026-11-22 10:00:05", datetime(2026, 11, 22, 10, 0, 5)),
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, 0)),
        ("2026-11-22T10:00:00.123Z", datetime(2026, 11, 22, 10, 0, 0, 123000)),
        ("2026-11-22T10:00+01:00", datetime(2026, 11, 22, 9, 0)),
        ("2026-11-22T00:30:00-05:00", datetime(2026, 11, 22, 5, 30)),
        ("2026-11-22T00:30:00+02:00", datetime(2026, 11, 21, 22, 30)),
        ("  2026-11-22T10:00Z  ", datetime(2026, 11, 22, 10, 0)),
    ],
)
def test_parse_time_gives_naive_utc(text: str, expected: datetime) -> None:
    parsed = av.parse_time(text)
    assert parsed == expected and parsed.tzinfo is None


@pytest.mark.parametrize(
    "text", ["", "   ", "yesterday", "2026-13-01", "2026-11-22T25:00", "22/11/2026", "10:00"]
)
def test_parse_time_rejects_with_one_line(text: str) -> None:
    with pytest.raises(ValueError) as info:
        av.parse_time(text)
    message = str(info.value)
    assert message.startswith("invalid time ") and "ISO 8601" in message
    assert "\n" not in message


# --------------------------------------------------------------------------- seconds_by_mode


@pytest.mark.parametrize(
    "modes, end, expected",
    [
        ([], T + 10, {}),
        ([mode("listen", T)], T + 10, {"listen": 10.0}),
        ([mode("listen", T), mode("whisper", T + 1.5)], T + 10, {"listen": 1.5, "whisper": 8.5}),
        # refused entries neither count nor interrupt
        ([mode("listen", T), mode("barge", T + 2, refused=True)], T + 10, {"listen": 10.0}),
        ([mode("barge", T - 5, refused=True), mode("listen", T)], T + 1, {"listen": 1.0}),
        ([mode("barge", T, refused=True)], T + 1, {}),
        # going back to a mode adds up
        ([mode("listen", T), mode("barge", T + 1), mode("listen", T + 3)], T + 4,
         {"listen": 2.0, "barge": 2.0}),
        # two changes in the same millisecond: the first lasted 0
        ([mode("listen", T), mode("whisper", T + 1), mode("barge", T + 1)], T + 2,
         {"listen": 1.0, "whisper": 0.0, "barge": 1.0}),
        # the end before a late mode change: clamped, never negative
        ([mode("listen", T), mode("whisper", T + 5)], T + 3, {"listen": 3.0, "whisper": 0.0}),
        ([mode("listen", T)], T - 1, {"listen": 0.0}),
        # thirds of a second still add up exactly
        ([mode("listen", T), mode("whisper", T + 1 / 3), mode("barge", T + 2 / 3)], T + 1,
         {"listen": 0.333, "whisper": 0.334, "barge": 0.333}),
        # long interventions keep millisecond precision
        ([mode("listen", T)], T + 12345.678, {"listen": 12345.678}),
    ],
)
def test_seconds_by_mode(modes, end, expected) -> None:
    assert av.seconds_by_mode(modes, end) == expected


@given(
    start=st.integers(min_value=0, max_value=10**12),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=600_000),
            st.sampled_from(["listen", "whisper", "barge", "customer_whisper"]),
            st.booleans(),
        ),
        max_size=12,
    ),
    tail=st.integers(min_value=-10_000, max_value=10_000_000),
)
def test_seconds_by_mode_always_adds_up_exactly(start: int, steps, tail: int) -> None:
    modes, at = [], start
    for delta, name, refused in steps:
        at += delta
        modes.append(mode(name, at / 1000, refused=refused))
    end_ms = at + tail
    result = av.seconds_by_mode(modes, end_ms / 1000)
    counted = [m for m in modes if not m["refused"]]
    if not counted:
        assert result == {}
        return
    first_ms = av.to_ms(counted[0]["at"])
    assert sum(round(v * 1000) for v in result.values()) == max(end_ms, first_ms) - first_ms
    assert all(v >= 0 for v in result.values())
    assert set(result) == {m["mode"] for m in counted}
    assert list(result)[0] == counted[0]["mode"]


# --------------------------------------------------------------------------- record


def test_record_has_exactly_the_spec_fields_in_order() -> None:
    rec = spec_record()
    assert list(rec) == list(av.RECORD_FIELDS)
    assert rec["started_at"] == "2026-11-22T10:00:00.123Z"
    assert rec["ended_at"] == "2026-11-22T10:01:30.456Z"
    assert rec["modes"] == [
        {"mode": "listen", "at": "2026-11-22T10:00:00.200Z", "source": "feature_code"},
        {"mode": "whisper", "at": "2026-11-22T10:00:12.000Z", "source": "dtmf"},
    ]
    assert rec["seconds_by_mode"] == {"listen": 11.8, "whisper": 78.456}


def test_refused_mode_entries_are_marked_and_kept_in_time_order() -> None:
    modes = [
        mode("whisper", T + 12),
        mode("barge", T + 5, refused=True),
        mode("listen", T + 0.2, "feature_code"),
    ]
    rec = av.record(row(ended_at=T + 20), modes)
    assert [(m["mode"], m.get("refused")) for m in rec["modes"]] == [
        ("listen", None), ("barge", True), ("whisper", None),
    ]
    assert rec["seconds_by_mode"] == {"listen": 11.8, "whisper": 8.0}


def test_an_active_record_runs_to_now_and_without_now_has_no_seconds() -> None:
    modes = [mode("listen", T + 1)]
    assert av.record(row(outcome="active", ended_at=None, end_reason=None), modes, T + 4)[
        "seconds_by_mode"
    ] == {"listen": 3.0}
    assert av.record(row(outcome="active", ended_at=None), modes)["seconds_by_mode"] == {}


def test_a_refused_attempt_record() -> None:
    rec = denied_record()
    assert rec["ended_at"] == rec["started_at"] == "2026-11-22T10:05:00.000Z"
    assert (rec["end_reason"], rec["modes"], rec["seconds_by_mode"]) == (None, [], {})


# --------------------------------------------------------------------------- renderings


def test_render_json_is_an_indented_array_of_records() -> None:
    records = [spec_record(), denied_record()]
    text = av.render_json(records)
    assert json.loads(text) == records
    assert text.startswith("[\n  {\n    \"id\": 17,")
    assert av.render_json([]) == "[]"


def test_render_csv_one_row_per_intervention_with_flattened_modes() -> None:
    records = [spec_record(), denied_record()]
    records[0]["modes"].insert(  # type: ignore[union-attr]
        1, {"mode": "barge", "at": "2026-11-22T10:00:05.500Z", "source": "dtmf", "refused": True}
    )
    text = av.render_csv(records)
    assert not text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(av.CSV_FIELDS)
    assert len(rows) == 2
    assert rows[0]["id"] == "17"
    assert rows[0]["reason"] == ""  # None -> empty
    assert rows[0]["started_at"] == "2026-11-22T10:00:00.123Z"
    # a script gets the JSON output's history back, full timestamps, sources and refusals included
    assert json.loads(rows[0]["modes"]) == records[0]["modes"]
    assert json.loads(rows[0]["modes"])[1] == {
        "mode": "barge", "at": "2026-11-22T10:00:05.500Z", "source": "dtmf", "refused": True
    }
    assert json.loads(rows[0]["seconds_by_mode"]) == {"listen": 11.8, "whisper": 78.456}
    # a spreadsheet gets plain numbers per mode
    assert [rows[0][f"seconds_{m}"] for m in av.MODES] == ["11.8", "78.456", "0", "0"]
    assert (rows[1]["outcome"], rows[1]["reason"], rows[1]["modes"], rows[1]["seconds_by_mode"]) == (
        "denied", "mode_not_allowed", "[]", "{}",
    )


def test_render_csv_quotes_awkward_values() -> None:
    rec = spec_record()
    rec["reason"] = 'odd, "quoted"\nvalue'
    [parsed] = list(csv.DictReader(io.StringIO(av.render_csv([rec]))))
    assert parsed["reason"] == 'odd, "quoted"\nvalue'


def test_render_csv_of_nothing_is_just_the_header() -> None:
    assert av.render_csv([]) == ",".join(av.CSV_FIELDS)


def test_render_table_is_readable() -> None:
    running = av.record(
        row(id=19, outcome="active", ended_at=None, end_reason=None), [mode("barge", T + 1)], T + 31
    )
    text = av.render_table([running, denied_record(), spec_record()])
    lines = text.splitlines()
    for header in ("id", "started (UTC)", "supervisor", "agent", "customer", "requested",
                   "outcome", "duration", "modes"):
        assert header in lines[0]
    assert len(lines) == 2 + 3
    assert "running 30.0s" in lines[2]
    assert "denied: mode_not_allowed" in lines[3]
    assert "completed (supervisor_hangup)" in lines[4]
    assert "1m30s" in lines[4] and "listen 11.8s, whisper 1m18s" in lines[4]  # humantime.duration: whole seconds past a minute
    assert "2026-11-22T10:00:00.123Z" in lines[4]  # the one time format of every output
    assert av.render_table([]) == "(no interventions)"


def test_render_show_table_has_fields_and_mode_history() -> None:
    rec = spec_record()
    text = av.render_show(rec, "table")
    fields = {line[:15].strip(): line[15:] for line in text.split("\n\n")[0].splitlines()}
    assert fields["supervisor"] == "1002  (c5c83ace-sup)" and fields["end reason"] == "supervisor_hangup"
    assert fields["started (UTC)"] == "2026-11-22T10:00:00.123Z"
    history = text.split("mode history:\n", 1)[1].splitlines()
    assert history[0].split() == ["#", "mode", "at", "(UTC)", "source", "seconds", "note"]
    assert history[2].split() == ["1", "listen", "2026-11-22T10:00:00.200Z", "feature_code", "11.800"]
    assert history[3].split() == ["2", "whisper", "2026-11-22T10:00:12.000Z", "dtmf", "78.456"]


def test_render_show_marks_refused_and_current_entries() -> None:
    rec = av.record(
        row(outcome="active", ended_at=None, end_reason=None),
        [mode("listen", T + 1, "feature_code"), mode("barge", T + 2, refused=True),
         mode("whisper", T + 3)],
        T + 10,
    )
    history = av.render_show(rec).split("mode history:\n", 1)[1].splitlines()
    assert history[2].split()[-1] == "2.000"
    assert history[3].split()[-1] == "refused"
    assert history[4].split()[-1] == "current"


def test_render_show_of_a_refused_attempt_has_no_history() -> None:
    assert av.render_show(denied_record()).endswith("mode history: (none)")


def test_render_show_json_is_one_object() -> None:
    rec = spec_record()
    assert json.loads(av.render_show(rec, "json")) == rec


def test_unknown_formats_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        av.render_show(spec_record(), "yaml")
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        av.render_channels([], "csv")


CHANNEL = {
    "node": "pbx1",
    "uuid": "e8ba682b-agent",
    "name": "sofia/internal/gw+1000@127.0.0.1:5070",
    "direction": "outbound",
    "state": "CS_EXCHANGE_MEDIA",
    "answer_state": "answered",
    "user": "1000",
    "dialed_user": "1000",
    "user_name": None,
    "presence_id": "1000@127.0.0.1",
    "caller_number": "1001",
    "callee_number": "1000",
    "destination": "1000",
    "peer_uuid": "cust-uuid",
    "call_uuid": "cust-uuid",
    "application": None,
    "application_data": None,
    "created_at": T + 0.5,
    "answered_at": None,
    "updated_at": T + 1,
}


def test_render_channels_json() -> None:
    [obj] = json.loads(av.render_channels([CHANNEL], "json"))
    assert list(obj) == [
        "node", "uuid", "name", "direction", "state", "answer_state", "user", "caller_number",
        "callee_number", "peer_uuid", "call_uuid", "application", "created_at", "answered_at",
    ]
    assert obj["created_at"] == "2026-11-22T10:00:00.500Z"
    assert obj["answered_at"] is None
    assert obj["user"] == "1000"
    assert av.render_channels([], "json") == "[]"


def test_render_channels_table() -> None:
    lines = av.render_channels([CHANNEL], "table").splitlines()
    assert lines[0].split()[:3] == ["node", "uuid", "name"]
    assert "sofia/internal/gw+1000@127.0.0.1:5070" in lines[2]
    assert "10:00:00.500Z" in lines[2]
    assert av.render_channels([], "table") == "(no live channels)"


def test_a_gap_counts_as_unknown_and_the_modes_still_add_up() -> None:
    """The daemon was down from 10:00:30 (the last moment it knew the mode) to the re-attach at
    10:00:36: those 6 s are `unknown`, not whisper, and every second is still counted once."""
    modes = [
        *SPEC_MODES,
        mode("unknown", datetime(2026, 11, 22, 10, 0, 30), "daemon_down"),
        mode("whisper", datetime(2026, 11, 22, 10, 0, 36), "reattach"),
    ]
    rec = av.record(row(), modes)
    assert [(m["mode"], m["source"]) for m in rec["modes"]][2:] == [("unknown", "daemon_down"), ("whisper", "reattach")]
    assert rec["seconds_by_mode"] == {"listen": 11.8, "whisper": 72.456, "unknown": 6.0}
    assert sum(rec["seconds_by_mode"].values()) == pytest.approx(90.256)  # modes[0].at to ended_at
    [header, values] = list(csv.reader(io.StringIO(av.render_csv([rec]))))
    assert header[-5:] == ["seconds_listen", "seconds_whisper", "seconds_barge", "seconds_customer_whisper", "seconds_unknown"]
    assert values[-5:] == ["11.8", "72.456", "0", "0", "6"]
    assert "unknown 6.0s" in av.render_table([rec])
