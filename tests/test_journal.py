"""The audit journal: durable lines, damage detected, state folded, compaction that keeps what matters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsbarge.daemon.health import Health
from fsbarge.daemon.journal import Journal, JournalError, _encode
from tests.fullfs import DiskFull, disk_full, tmpfs_full  # noqa: F401  (fixture)


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


def test_lines_without_what_they_need_are_skipped_like_damaged_ones_not_a_crash(tmp_path: Path) -> None:
    """A checksummed line can still lack its uid or kind (written by a bug, or edited by hand and
    re-checksummed): it is set aside like a damaged line, the journal opens, the rest is kept."""
    path = tmp_path / "j"
    j = Journal(path)
    j.append([opened("a"), mode("a", "barge", "m1")])
    j.close()
    with path.open("ab") as f:
        for bad in ({"kind": "open", "id": "x", "record": {"outcome": "active"}, "seq": 10},  # no uid
                    {"id": "y", "uid": "y", "seq": 11},  # no kind
                    {"kind": "mode", "id": "z", "uid": "a", "mode": "listen", "seq": 12},  # no at/source/refused
                    {"kind": "node", "node": ["pbx1"], "seq": 13}):  # a node that is not a name
            f.write(_encode(bad))
    again = Journal(path)
    assert [d["why"] for d in again.damage] == ["malformed: no uid", "malformed: no kind", "malformed: no at", "malformed: no node"]
    assert [m["mode"] for m in again.records["a"]["modes"]] == ["barge"]
    again.append([close("a")])
    assert again.records == {}


def test_a_compaction_on_a_full_disk_leaves_the_journal_whole(tmp_path: Path, tmpfs_full: DiskFull) -> None:
    """The kernel's full disk writes what fits and says so only with a short count: a compaction
    must not rename half a journal into place (nor leave its half-written copy taking space)."""
    path = tmpfs_full.dir / "j"
    j = Journal(path)
    for i in range(300):
        j.append([opened(f"r{i}", sup=f"s{i}"), close(f"r{i}")], sync=False)
    j.shipped(300)  # half of it is in the database: compaction would rewrite the other 300 lines
    before = path.read_bytes()
    tmpfs_full.fill(leave=16384)  # room for part of the compacted copy
    assert j.compact() == 0
    assert path.read_bytes() == before
    assert not (tmpfs_full.dir / "j.tmp").exists()
    j.close()
    tmpfs_full.free()
    assert len(Journal(path).unshipped(1000)) == 600


def test_changes_held_while_the_journal_cannot_be_written_go_first_once_it_can(tmp_path: Path, disk_full: DiskFull) -> None:
    """A close the full disk refused is held (the state follows it at once: the record is not
    re-attached), the problem is reported once, and the close is written before anything decided
    after it as soon as the file takes writes again."""
    health = Health()
    path = disk_full.dir / "j"
    j = Journal(path, health=health)
    j.append([opened("a"), mode("a", "barge", "m1")])
    disk_full.fill(j)
    with pytest.raises(JournalError, match="No space left on device"):
        j.append([close("a")])
    j.hold([close("a")])
    assert j.records == {} and j.held == 1 and j.backlog == 3
    with pytest.raises(JournalError):
        j.append([{"kind": "node", "node": "pbx1", "last_seen": 5.0}], sync=False)  # a heartbeat retries it: still full
    assert len(health.problems) == 1 and health.problems[0].startswith(f"cannot write the audit journal {path}: No space left")
    disk_full.free()
    j.append([opened("b", sup="sup-2")])
    assert j.held == 0 and health.problems == []
    assert [(c["kind"], c["uid"]) for c in j.unshipped() if c["kind"] != "padding"] == [
        ("open", "a"), ("mode", "a"), ("close", "a"), ("open", "b")]
    j.close()
    assert list(Journal(path).records) == ["b"]


def test_held_changes_are_bounded_and_what_does_not_fit_is_said(tmp_path: Path) -> None:
    health = Health()
    j = Journal(tmp_path / "j", health=health, max_held=2)
    assert j.hold([close("a"), close("b"), close("c")]) == 1
    assert j.held == 2
    assert health.problems == ["1 audit change lost: the audit journal could not be written and 2 were already held in memory"]
