"""The fault campaign: scripted contact-centre traffic against the simulator, the real daemon in its own
process SIGKILLed at random points, database locks held across kills, then every intervention the
daemon decided is checked against what the simulator (FreeSWITCH's stand-in) says happened.

``python -m tests.faults --kills 100`` (``make faults``) runs it in full; ``tests/test_faults.py``
runs a CI-sized campaign in ``make test``. Prints one line, e.g.
``fault campaign: 100 kills, 0 decided interventions lost or wrong``.

What "right" means, per supervisor channel the simulator ran eavesdrop for:

- exactly one audit record, closed;
- its mode history (refused keys left out, repeats folded) equals the modes the simulator applied,
  with keys the daemon undid left out; a key may be missing only if the daemon was killed before it
  could journal it (the re-attach then re-asserts the recorded mode, which the simulator shows);
- its end reason is the one the simulator's ending implies, or ``daemon_restart`` when the
  daemon was killed before it could journal the ending; a FreeSWITCH restart while the daemon
  was down (the campaign does that too) must be ``freeswitch_shutdown``, told by the Core-UUID;
- it never claims a mode for a moment the daemon could not know it: while the daemon was dead,
  or while FreeSWITCH was silent (the campaign also silences the simulator now and then: the
  socket stays open, nothing comes; the daemon must notice, reconnect and lose nothing), the
  history says ``unknown`` (keys pressed then are the reason), and the modes around it are judged
  as above.

Every other feature-code attempt has at most one record, and none claims audio that never flowed.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsbarge.auditview import to_ms
from fsbarge.db import make_engine
from fsbarge.journal import _decode
from fsbarge.sim import FreeSwitchSim
from fsbarge.store import AuditStore
from tests.e2e import DaemonProcess, write_config

AGENTS = ("1000", "1004", "1010")
SUPERVISORS = ("1002", "1005", "1012")  # 1012 leads support: listen and whisper only, agent 1010
CUSTOMERS = ("1001", "1003", "1006")
END_REASONS = {"star": "supervisor_left", "target_hangup": "call_ended", "supervisor_hangup": "supervisor_hangup", "shutdown": "freeswitch_shutdown"}
CONFIRM_SECONDS = 2.0
# FreeSWITCH's HEARTBEAT (every 20 s in production) and the daemon's idle_timeout, scaled down: a
# silent simulator is noticed within IDLE_TIMEOUT + command_timeout
HEARTBEAT_SECONDS = 0.3
IDLE_TIMEOUT = 1.0
# a gap starts at the last thing the daemon read; what the simulator had queued when it went
# silent may still arrive a moment after silence() returned
SILENCE_SLACK = 0.25


def wait_for(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


@dataclass
class Result:
    kills: int
    steps: int
    attempts: int
    checked: int
    wrong: list[str] = field(default_factory=list)
    unseen_keys: int = 0
    unseen_ends: int = 0
    locks: int = 0
    fs_restarts: int = 0
    silences: int = 0

    @property
    def line(self) -> str:
        return f"fault campaign: {self.kills} kills, {len(self.wrong)} decided interventions lost or wrong"


class Campaign:
    def __init__(self, tmp: Path, kills: int, seed: int, *, lock_every: int = 4, silence_every: int = 12) -> None:
        self.tmp = tmp
        self.kills_wanted = kills
        self.rng = random.Random(seed)
        self.lock_every = lock_every
        self.silence_every = silence_every
        self.sim = FreeSwitchSim(password="ClueCon", threaded=True, heartbeat_interval=HEARTBEAT_SECONDS).start()
        self.config = write_config(tmp, self.sim.port, node_extra=f"idle_timeout = {IDLE_TIMEOUT}")
        self.db_path = tmp / "fsbarge.db"
        self.journal_path = tmp / "fsbarge.journal"
        self.daemon: DaemonProcess | None = None
        self.locker: sqlite3.Connection | None = None
        self.calls: dict[str, Any] = {}  # agent -> Call
        self.sups: dict[str, str] = {}  # supervisor ext -> channel uuid (parked or eavesdropping)
        self.attempts: list[str] = []  # every feature-code channel uuid
        self.step = 0
        self.kills = 0
        self.locks = 0
        self.fs_restarts = 0
        self.seen: dict[str, dict[str, Any]] = {}  # journal: supervisor uuid -> {"uid", "modes": [...], "closed"}
        self.uid_sup: dict[str, str] = {}
        self.unseen_keys: dict[str, list[int]] = {}  # sup -> indexes in the simulator's mode log
        self.unseen_end: set[str] = set()
        self.unseen_start: set[str] = set()
        # (from, to) wall-clock seconds during which the daemon could not know what FreeSWITCH did
        self.blind: list[tuple[float, float]] = []
        self.silences = 0

    # -- the daemon and its journal --------------------------------------------------------------
    def start_daemon(self) -> None:
        self.daemon = DaemonProcess(self.config, self.tmp / "daemon.log")
        # connected (subscribed) and resynced: the simulator sees a client with events on
        wait_for(lambda: any(c.events for c in self.sim.clients()), 30)

    def read_journal(self) -> None:
        """What the daemon has decided so far (it fsyncs before acting; compaction only drops what
        the database has, and we read the journal often enough to have seen it before)."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.split(b"\n"):
            change = _decode(line) if line else None
            if change is None:
                continue
            kind = change.get("kind")
            if kind == "open":
                sup = change["record"].get("supervisor_uuid")
                self.uid_sup[change["uid"]] = sup
                self.seen.setdefault(sup, {"uid": change["uid"], "modes": {}, "closed": False, "outcome": change["record"]["outcome"]})
            elif kind in ("mode", "close"):
                sup = self.uid_sup.get(change["uid"])
                if sup is None:
                    continue
                if kind == "mode":
                    self.seen[sup]["modes"][change["id"]] = (change["mode"], change["source"], change["refused"])
                else:
                    self.seen[sup]["closed"] = True

    def confirm(self, predicate: Callable[[], bool]) -> bool:
        if self.daemon is None:
            return False

        def check() -> bool:
            self.read_journal()
            return predicate()

        return bool(wait_for(check, CONFIRM_SECONDS))

    def dtmf_count(self, sup: str) -> int:
        return sum(1 for m in self.seen.get(sup, {}).get("modes", {}).values() if m[1] == "dtmf")

    # -- steps -------------------------------------------------------------------------------
    def act(self, hangups: bool = True) -> None:
        rng = self.rng
        log = self.sim.eavesdrop_log()
        running = [s for s, u in self.sups.items() if u in log and log[u]["end"] is None]
        choices = ["call"] * 2 + ["dial"] * 3 + ["key"] * (5 if running else 0) + ["hangup"] * (2 if hangups else 0)
        what = rng.choice(choices)
        if what == "call":
            free = [a for a in AGENTS if a not in self.calls]
            if free:
                agent = rng.choice(free)
                self.calls[agent] = self.sim.place_call(rng.choice(CUSTOMERS), agent)
        elif what == "dial":
            idle = [s for s in SUPERVISORS if s not in self.sups]
            if idle:
                sup = rng.choice(idle)
                uuid = self.sim.dial(sup, f"*3{rng.choice('345')}{rng.choice(AGENTS)}")
                self.sups[sup] = uuid
                self.attempts.append(uuid)
                self.confirm(lambda: uuid in self.seen)
        elif what == "key":
            sup = rng.choice(running)
            uuid = self.sups[sup]
            before = len(self.sim.eavesdrop_log()[uuid]["modes"])
            digit = rng.choice("01230123*")
            self.read_journal()  # else a key journaled a moment ago would pass for this one
            seen_before = self.dtmf_count(uuid)
            self.sim.press(uuid, digit)
            after = self.sim.eavesdrop_log()[uuid]["modes"]
            if len(after) > before and after[before][1] == "dtmf":
                if not self.confirm(lambda: self.dtmf_count(uuid) > seen_before):
                    self.unseen_keys.setdefault(uuid, []).append(before)
        else:
            self.hangup(rng.choice(["supervisor", "agent", "customer"]))
        self.note_ends()

    def hangup(self, who: str) -> None:
        uuid = None
        if who == "supervisor" and self.sups:
            uuid = self.sups.pop(self.rng.choice(sorted(self.sups)))
        elif self.calls:
            call = self.calls.pop(self.rng.choice(sorted(self.calls)))
            uuid = call.b_uuid if who == "agent" else call.a_uuid
        if uuid is not None:
            self.hang_up(uuid)

    def hang_up(self, uuid: str) -> None:
        try:
            self.sim.hangup(uuid)
        except KeyError:
            pass  # gone meanwhile (the daemon hung the supervisor up, the other party ended the call)

    def note_ends(self) -> None:
        """Eavesdrops that just ended must show up closed in the journal (unless we kill first)."""
        log = self.sim.eavesdrop_log()
        for uuid, entry in log.items():
            if entry["end"] is not None and uuid not in self.unseen_end and not self.seen.get(uuid, {}).get("closed"):
                if not self.confirm(lambda u=uuid: self.seen.get(u, {}).get("closed")):
                    self.unseen_end.add(uuid)
        # supervisors the daemon hung up (refusals, ends) are free again
        for sup, uuid in list(self.sups.items()):
            if self.sim.channel(uuid) is None:
                del self.sups[sup]
        for agent, call in list(self.calls.items()):
            if self.sim.channel(call.b_uuid) is None:
                del self.calls[agent]

    def kill(self) -> None:
        assert self.daemon is not None
        self.read_journal()
        self.daemon.kill()
        killed = time.time()
        # audio that started but whose first mode the daemon had not journaled when it died
        for uuid in self.sim.eavesdrop_log():
            if not self.seen.get(uuid, {}).get("modes"):
                self.unseen_start.add(uuid)
        self.daemon = None
        self.kills += 1
        # the simulator must have seen the old connection go, or the next start would look subscribed
        if not wait_for(lambda: not any(c.events for c in self.sim.clients()), 10):
            raise AssertionError("the simulator still lists the killed daemon's connection")
        # while the daemon is down, the world goes on; now and then FreeSWITCH restarts too
        if self.rng.randrange(8) == 0:
            self.sim.shutdown_restart()
            self.fs_restarts += 1
            self.calls.clear()
            self.sups.clear()
        for _ in range(self.rng.randint(0, 2)):
            self.act()
        if self.locker is None and self.rng.randrange(self.lock_every) == 0:
            self.locker = sqlite3.connect(self.db_path, isolation_level=None, timeout=10)
            self.locker.execute("BEGIN EXCLUSIVE")
            self.locks += 1
        elif self.locker is not None and self.rng.randrange(2) == 0:
            self.unlock()
        self.blind.append((killed, time.time()))
        self.start_daemon()

    def unlock(self) -> None:
        if self.locker is not None:
            self.locker.execute("COMMIT")
            self.locker.close()
            self.locker = None

    def silence(self) -> None:
        """FreeSWITCH goes silent for a while (the socket stays open, nothing comes, commands are
        not run); keys are pressed and feature codes dialled meanwhile. The daemon must notice,
        drop the connection, and once FreeSWITCH speaks again reconnect and resync. (No hang-ups
        in the silence: how an ending nobody saw is told after a reconnect is not what this checks.)"""
        self.read_journal()
        self.sim.silence()
        silent_from = time.time()
        self.silences += 1
        for _ in range(self.rng.randint(1, 3)):
            self.act(hangups=False)
        # the daemon closes the silenced connection (new attempts get no auth/request either)
        if not wait_for(lambda: not any(c.authed for c in self.sim.clients()), 60):
            raise AssertionError("the daemon did not notice that FreeSWITCH went silent")
        silent_to = time.time()
        self.sim.silence(False)
        self.blind.append((silent_from + SILENCE_SLACK, silent_to))
        if not wait_for(lambda: any(c.events and not c.silent for c in self.sim.clients()), 60):
            raise AssertionError("the daemon did not reconnect once FreeSWITCH spoke again")

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> Result:
        try:
            self.start_daemon()
            while self.kills < self.kills_wanted:
                self.step += 1
                self.act()
                if self.rng.randrange(3) == 0:
                    self.kill()
                elif self.rng.randrange(self.silence_every) == 0:
                    self.silence()
            self.unlock()
            self.finish()
            return self.check()
        finally:
            self.unlock()
            if self.daemon is not None:
                try:
                    self.daemon.terminate()
                except subprocess.TimeoutExpired:  # a daemon that will not stop is killed, not left behind
                    self.daemon.kill()
                    raise
            self.sim.stop()

    def finish(self) -> None:
        """Everyone hangs up; wait until the database has every record closed."""
        for uuid in list(self.sups.values()):
            self.hang_up(uuid)
        for call in self.calls.values():
            self.hang_up(call.a_uuid)
        self.sups.clear()
        self.calls.clear()
        self.note_ends()
        wait_for(lambda: not self.sim.channels(), 20)
        engine = make_engine(f"sqlite:///{self.db_path}")
        audit = AuditStore(engine)
        self.read_journal()

        def settled() -> bool:
            records = audit.list(limit=None)
            return all(r["outcome"] != "active" for r in records) and len(records) >= len(self.seen)

        if not wait_for(settled, 30):
            raise AssertionError("the database did not catch up with the journal within 30 s")
        self.records = audit.list(limit=None)
        engine.dispose()

    def check(self) -> Result:
        log = self.sim.eavesdrop_log()
        by_sup: dict[str, list[dict[str, Any]]] = {}
        for r in self.records:
            by_sup.setdefault(r["supervisor_uuid"], []).append(r)
        wrong: list[str] = []
        for uuid in self.attempts:
            recs = by_sup.get(uuid, [])
            truth = log.get(uuid)
            if len(recs) > 1:
                wrong.append(f"{uuid}: {len(recs)} records")
                continue
            if truth is None:
                if recs and any(not m.get("refused") for m in recs[0]["modes"]):
                    wrong.append(f"{uuid}: modes recorded but eavesdrop never ran")
                if uuid in self.seen and not recs:
                    wrong.append(f"{uuid}: decided (journaled) but not in the database")
                continue
            if not recs:
                wrong.append(f"{uuid}: eavesdrop ran but no record")
                continue
            rec = recs[0]
            problem = self.judge(uuid, rec, truth)
            if problem:
                wrong.append(f"{uuid}: {problem}")
        return Result(
            kills=self.kills, steps=self.step, attempts=len(self.attempts), checked=sum(1 for u in self.attempts if u in log),
            wrong=wrong, unseen_keys=sum(len(v) for v in self.unseen_keys.values()), unseen_ends=len(self.unseen_end),
            locks=self.locks, fs_restarts=self.fs_restarts, silences=self.silences,
        )

    def judge(self, uuid: str, rec: dict[str, Any], truth: dict[str, Any]) -> str | None:
        if rec["outcome"] == "active":
            return "still active"
        expected = END_REASONS.get(truth["end"] or "", "?")
        # A FreeSWITCH restart while the daemon was down is told by the Core-UUID: never a guess.
        allowed = {expected} | ({"daemon_restart"} if uuid in self.unseen_end and truth["end"] != "shutdown" else set())
        # killed before it saw audio start or end: "failed" says it cannot know (see below)
        cannot_know = uuid in self.unseen_end or uuid in self.unseen_start
        if rec["end_reason"] not in allowed and not (rec["outcome"] == "failed" and cannot_know):
            return f"end_reason {rec['end_reason']!r}, expected {sorted(allowed)} ({truth['end']})"
        blind = claimed_while_blind(rec, self.blind)
        if blind:
            return blind
        # the gaps are judged above; the modes around them as ever
        got = fold([m["mode"] for m in rec["modes"] if not m.get("refused") and m["mode"] != "unknown"])
        applied = effective(truth["modes"])
        variants = [applied]
        if uuid in self.unseen_keys:
            variants.append(effective(truth["modes"], drop=set(self.unseen_keys[uuid])))
        if not got and (uuid in self.unseen_start or uuid in self.unseen_end) and (rec["outcome"] == "failed" or truth["end"] == "shutdown"):
            # killed before it saw audio start, the supervisor gone when it came back: it cannot know
            # whether audio flowed, and says so (failed, daemon_restart), it does not guess a mode
            return None
        if got not in variants:
            return f"modes {got}, FreeSWITCH applied {applied}"
        return None


def claimed_while_blind(rec: dict[str, Any], blind: list[tuple[float, float]]) -> str | None:
    """What the record claims to know about a time the daemon could not know it (dead, or FreeSWITCH
    silent): any mode but ``unknown`` in force during such a time is wrong. None when it claims none."""
    entries = sorted(((to_ms(m["at"]), i, m["mode"]) for i, m in enumerate(rec["modes"]) if not m.get("refused")))
    if not entries or rec["ended_at"] is None:
        return None
    end = to_ms(rec["ended_at"])
    for start_s, stop_s in blind:
        lo, hi = max(round(start_s * 1000), entries[0][0]), min(round(stop_s * 1000), end)
        if lo >= hi:
            continue  # not running then
        in_force = [e for e in entries if e[0] <= lo][-1:] + [e for e in entries if lo < e[0] < hi]
        for at, _, mode in in_force:
            if mode != "unknown":
                return f"claims {mode} at {max(at, lo)} ms while the daemon could not know ({round(start_s * 1000)}-{round(stop_s * 1000)})"
    return None


def fold(modes: list[str]) -> list[str]:
    out: list[str] = []
    for m in modes:
        if not out or out[-1] != m:
            out.append(m)
    return out


def effective(log: list[tuple[str, str]], drop: set[int] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The modes that counted: keys the daemon undid do not. One of our commands that puts back
    the mode held just before the last keys (those since our previous command) undoes them: a
    refused key, or keys the daemon never saw overridden by its re-assert. Any other command is a
    mode of its own (a re-assert or confirmation); a key the daemon saw and then overrode with
    another mode therefore still shows here and not in the record, and is flagged."""
    kept: list[tuple[str, str]] = []
    barrier = 0  # keys before this index were settled by an earlier command
    for i, (mode, cause) in enumerate(log):
        if i in drop:
            continue
        if cause == "command":
            k = len(kept)
            while k > barrier and kept[k - 1][1] == "dtmf" and kept[k - 1][0] != mode:
                k -= 1
            if k < len(kept) and k > 0 and kept[k - 1][0] == mode:
                del kept[k:]  # undone
                barrier = len(kept)
                continue
            kept.append((mode, cause))
            barrier = len(kept)
            continue
        kept.append((mode, cause))
    return fold([m for m, _ in kept])


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(prog="tests.faults", description="the fault campaign (see the module docstring)")
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = Campaign(Path(tmp), args.kills, args.seed).run()
    print(f"(seed {args.seed}; {result.steps} steps, {result.attempts} feature-code attempts, {result.checked} eavesdrops checked, "
          f"{result.locks} database locks held across kills, {result.fs_restarts} FreeSWITCH restarts with the daemon down, "
          f"{result.silences} silences of FreeSWITCH, {result.unseen_keys} keys and {result.unseen_ends} endings "
          "the daemon was killed or cut off before it could see)")
    for problem in result.wrong:
        print("  " + problem)
    print(result.line)
    return 1 if result.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
