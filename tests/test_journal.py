"""The audit journal: durable lines, damage detected, state folded, compaction that keeps what matters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsbarge.journal import Journal, JournalError


def opened(uid: str, sup: str = "sup-1", outcome: str = "active") -> dict:
    return {
        "kind": "open", "id": uid, "uid": uid, "node": "pbx1",
        "record": {"node": "pbx1", "supervisor_uuid": sup, "outcome": outcome, "requested_mode": "listen", "started_at": 1.0},
    }


def mode(uid: str, m: str, change_id: str, refused: bool = False) -> dict:
    return {"kind": "mode", "id": change_id, "uid": uid, "mode": m, "at": 2.0, "source": "dtmf", "refused": refused}


def close(uid: str) -> dict:
    return {"kind": "close", "id": uid + "-close", "uid": uid, "outcome": "completed", "ended_at": 3.0, "end_reason": "call_ended", "reason": None}


def test_changes_survive_a_reopen_with_their_state(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append([opened("a"), mode("a", "listen", "m1"), mode("a", "barge", "m2"), mode("a", "whisper", "m3", refused=True)])
    j.append([{"kind": "node", "node": "pbx1", "core_uuid": "core-1"}])
    j.close()
    again = Journal(path)
    assert [c["seq"] for c in again.unshipped()] == [1, 2, 3, 4, 5]
    rec = again.records["a"]
    assert rec["current_mode"] == "barge"  # a refused key does not change the mode
    assert [m["mode"] for m in rec["modes"]] == ["listen", "barge", "whisper"]
    assert again.nodes["pbx1"]["core_uuid"] == "core-1"
    assert list(again.decided) == ["sup-1"]
    assert again.backlog == 4  # node lines are not audit changes


def test_a_torn_last_line_is_dropped_and_the_file_cut_back(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append([opened("a")])
    j.close()
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b"deadbeef {\"kind\":\"mo")  # the crash came mid-write
    again = Journal(path)
    assert list(again.records) == ["a"]
    assert path.read_bytes() == whole
    again.append([close("a")])  # the next line starts on a clean line
    again.close()
    assert Journal(path).records == {}


def test_a_damaged_line_is_skipped_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append([opened("a"), mode("a", "barge", "m1")])
    j.close()
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"barge", b"bargX")  # checksum no longer matches
    path.write_bytes(b"".join(lines))
    again = Journal(path)
    assert again.damaged == 1
    assert again.records["a"]["modes"] == []


def test_a_full_disk_keeps_nothing_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append([opened("a")])
    full = os.open("/dev/full", os.O_WRONLY)
    real = os.dup(j._fd)  # noqa: SLF001 - our own class: swap in a descriptor that fails like a full disk
    os.dup2(full, j._fd)  # noqa: SLF001
    with pytest.raises(JournalError, match=r"^cannot write the audit journal .*: No space left on device$"):
        j.append([mode("a", "barge", "m1")])
    os.dup2(real, j._fd)  # noqa: SLF001
    os.close(full)
    os.close(real)
    assert j.records["a"]["modes"] == []  # the state did not change either
    j.append([mode("a", "listen", "m2")])
    j.close()
    assert [m["mode"] for m in Journal(path).records["a"]["modes"]] == ["listen"]


def test_an_unwritable_place_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match=r"^cannot write the audit journal .*file/j: (Not a directory|File exists)$"):
        Journal(blocker / "j")


def test_compaction_keeps_unshipped_changes_and_open_records_only(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append([opened("done"), mode("done", "listen", "d1"), close("done")])
    j.append([opened("refused", sup="sup-2", outcome="denied")])
    j.append([opened("open", sup="sup-3"), mode("open", "whisper", "o1")])
    j.append([{"kind": "node", "node": "pbx1", "core_uuid": "core-1"}])
    for t in range(5):  # heartbeats after it must not make compaction forget the Core-UUID
        j.append([{"kind": "node", "node": "pbx1", "last_seen": float(t)}], sync=False)
    j.shipped(len(j.unshipped()))
    j.append([mode("open", "barge", "o2")])  # not shipped yet
    assert j.compact() > 0
    kinds = [(c["kind"], c.get("id")) for c in j.unshipped()]
    assert kinds == [("mode", "o2")]  # only this is owed to the database
    j.close()
    again = Journal(path)
    assert list(again.records) == ["open"]
    assert [m["mode"] for m in again.records["open"]["modes"]] == ["whisper", "barge"]
    assert again.nodes["pbx1"] == {"core_uuid": "core-1", "last_seen": 4.0}
    assert again.droppable() == 0  # nothing more to compact: no rewrite at every idle moment
    assert set(again.decided) == {"sup-1", "sup-2", "sup-3"}  # decided requests are remembered
    assert again.backlog == 3  # after a restart everything kept is shipped again (idempotently)


def test_compaction_of_a_fully_shipped_journal_keeps_only_the_state(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    for i in range(50):
        j.append([opened(f"r{i}", sup=f"s{i}"), close(f"r{i}")])
    j.shipped(len(j.unshipped(1000)))
    assert j.droppable() == 100
    j.compact()
    assert j.backlog == 0 and j.droppable() == 0
    j.append([opened("late", sup="s-late")])  # after a compaction, shipping goes on from the right place
    assert [c["uid"] for c in j.unshipped()] == ["late"]
    j.shipped(1)
    assert j.backlog == 0
    assert (tmp_path / "j").stat().st_size < 2000
