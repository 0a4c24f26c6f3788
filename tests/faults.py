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
  could journal it (the re-attach then re-asserts the recorded mode, which the simulator shows); a
  mode the daemon journaled may end the history although FreeSWITCH left it only if the daemon was
  killed before it could re-assert it (a key that crossed one of its commands on the wire) and the
  eavesdrop ended before a re-attach could;
- its end reason is the one the simulator's ending implies, or ``daemon_restart`` when the
  daemon was killed before it could journal the ending; a FreeSWITCH restart while the daemon
  was down (the campaign does that too) must be ``freeswitch_shutdown``, told by the Core-UUID;
- it never claims a mode for a moment the daemon could not know it: while the daemon was dead,
  or while FreeSWITCH was silent (the campaign also silences the simulator now and then: the
  socket stays open, nothing comes; the daemon must notice, reconnect and lose nothing), the
  history says ``unknown`` (keys pressed then are the reason), and the modes around it are judged
  as above.

Every other feature-code attempt has at most one record, and none claims audio that never flowed.

Two more faults, now and then (and once early, so a CI-sized run has each):

- the journal's filesystem fills up (a tmpfs of the campaign's own; root only, else skipped and
  said) for a few steps, across a hang-up: new interventions are refused, what happened is held
  in memory, and once space is back every close held must reach the journal with its own end
  reason (a kill meanwhile loses what was held: then ``daemon_restart`` is allowed, as for any
  ending the daemon did not journal);
- a trigger in the database refuses one supervisor's records for a few steps: those changes are
  quarantined while everything else flows, then ``fsbarge audit quarantine retry`` applies them;
  at the end nothing may be left in the quarantine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsbarge.daemon.health import status_file_path
from fsbarge.daemon.journal import _decode
from fsbarge.daemon.quarantine import quarantine_path, read_entries
from fsbarge.read.auditview import to_ms
from fsbarge.store.engine import make_engine
from fsbarge.sim import FreeSwitchSim
from fsbarge.store.audit_apply import AuditStore
from tests.e2e import ROOT, WAIT, DaemonProcess, write_config
from tests.fullfs import CannotMount, TmpfsFull

AGENTS = ("1000", "1004", "1010")
SUPERVISORS = ("1002", "1005", "1012")  # 1012 leads support: listen and whisper only, agent 1010
CUSTOMERS = ("1001", "1003", "1006")
END_REASONS = {"star": "supervisor_left", "target_hangup": "call_ended", "supervisor_hangup": "supervisor_hangup", "shutdown": "freeswitch_shutdown"}
# How long the campaign waits for the daemon to journal what it just did before it moves on (and may
# kill it). A wait that runs out counts the step as one the daemon was killed before it could see,
# which the check then forgives: on a loaded machine a short bound would quietly weaken the check.
CONFIRM_SECONDS = WAIT
TEAM_PAIRS = (("1002", "1000"), ("1005", "1004"), ("1012", "1010"))  # a supervisor and an agent of its team
HELD_SECONDS = 20.0  # held changes reach the journal with the next heartbeat (every 5 s) once there is space
JOURNAL_FULL = b"cannot write the audit journal"
# FreeSWITCH's HEARTBEAT (every 20 s in production) and the daemon's idle_timeout, scaled down: a
# silent simulator is noticed within IDLE_TIMEOUT + command_timeout
HEARTBEAT_SECONDS = 0.3
IDLE_TIMEOUT = 1.0
# a gap starts at the last thing the daemon read; what the simulator had queued when it went
# silent may still arrive a moment after silence() returned
SILENCE_SLACK = 0.25
RESYNCED = b"resynced from show channels"  # the daemon's log line once a (re)connect's snapshot is applied


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
    disk_fulls: int = 0
    held_closes: int = 0
    poisons: int = 0
    quarantined: int = 0
    disk_note: str = ""
    silences: int = 0

    @property
    def line(self) -> str:
        return f"fault campaign: {self.kills} kills, {len(self.wrong)} decided interventions lost or wrong"


class Campaign:
    def __init__(self, tmp: Path, kills: int, seed: int, *, lock_every: int = 4, fault_every: int = 40,
                 silence_every: int = 12) -> None:
        self.tmp = tmp
        self.kills_wanted = kills
        self.rng = random.Random(seed)
        # silences draw from their own stream: a seed's kills and steps stay what they were
        self.silence_rng = random.Random(seed + 1)
        self.lock_every = lock_every
        self.fault_every = fault_every
        self.silence_every = silence_every
        self.sim = FreeSwitchSim(password="ClueCon", threaded=True, heartbeat_interval=HEARTBEAT_SECONDS).start()
        self.disk: TmpfsFull | None = None
        self.disk_note = ""
        try:
            self.disk = TmpfsFull(tmp / "journal-fs", size="4m")
        except CannotMount as exc:
            self.disk_note = f"disk-full steps skipped: {exc}"
        journal_dir = self.disk.dir if self.disk is not None else tmp
        self.journal_path = journal_dir / "fsbarge.journal"
        self.config = write_config(tmp, self.sim.port, journal_path=self.journal_path, node_extra=f"idle_timeout = {IDLE_TIMEOUT}")
        self.db_path = tmp / "fsbarge.db"
        self.daemon_log = tmp / "daemon.log"
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
        self.unasserted: dict[str, str] = {}  # sup -> the mode it had journaled last when killed, FreeSWITCH elsewhere
        self.shutdown_ok: set[str] = set()  # unseen endings a FreeSWITCH restart came after
        self.ends_checked: set[str] = set()
        # the faults of this round: a full journal filesystem, a trigger refusing a supervisor
        self.full_left = 0  # steps the disk stays full (0: not full)
        self.full_unseen: set[str] = set()  # endings not journaled while the disk was full
        self.disk_fulls = 0
        self.held_closes = 0
        self.poisoned: str | None = None  # the supervisor whose records the database refuses
        self.poison_left = 0
        self.poisons = 0
        self.quarantined = 0
        # (from, to) wall-clock seconds during which the daemon could not know what FreeSWITCH did
        self.blind: list[tuple[float, float]] = []
        self.silences = 0
        self.lagging: list[str] = []  # what the database lacked at the last look (finish)

    # -- the daemon and its journal --------------------------------------------------------------
    def start_daemon(self) -> None:
        log = self.daemon_log  # every run of the daemon appends to it
        resyncs = log.read_bytes().count(RESYNCED) if log.exists() else 0
        self.daemon = DaemonProcess(self.config, log)
        # connected and resynced, not merely subscribed: what the daemon makes of the resync window
        # (events read before, during and after the snapshot; an attempt that fails) is tested
        # deterministically in tests/test_e2e_resync_race.py, and a loaded machine makes that window
        # seconds long: the campaign would spend its steps there.
        if not wait_for(lambda: log.read_bytes().count(RESYNCED) > resyncs, WAIT):
            raise AssertionError(f"the daemon did not resync within {WAIT:.0f} s (see {log})")

    def read_journal(self) -> None:
        """What the daemon has decided so far (it fsyncs before acting; compaction only drops what
        the database has, and we read the journal often enough to have seen it before). Compaction
        keeps every line of an open intervention: one whose lines are all gone was closed (and
        shipped), even if we missed its close between two reads."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        present: set[str] = set()
        for line in data.split(b"\n"):
            change = _decode(line) if line else None
            if change is None:
                continue
            present.add(change.get("uid"))
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
                    if not self.seen[sup]["closed"]:  # the first close stands
                        self.seen[sup]["end_reason"] = change.get("end_reason")
                    self.seen[sup]["closed"] = True
        for entry in self.seen.values():
            if entry["uid"] not in present:
                entry["closed"] = True

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
            if entry["end"] is None or uuid in self.unseen_end or uuid in self.ends_checked:
                continue
            if not self.confirm(lambda u=uuid: self.seen.get(u, {}).get("closed")):
                self.unseen_end.add(uuid)
                continue
            self.ends_checked.add(uuid)
            reason = self.seen[uuid].get("end_reason")
            if reason in ("daemon_restart", "freeswitch_shutdown") and reason != END_REASONS.get(entry["end"]):
                # closed by a restart's resync before we noticed the ending (the simulator applies a
                # queued '*' when eavesdrop returns): it ended while the daemon was down, unseen
                self.unseen_end.add(uuid)
                if reason == "freeswitch_shutdown":
                    self.shutdown_ok.add(uuid)
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
        if self.full_left:  # what was held in memory died with the daemon: daemon_restart is allowed for it
            self.free_disk(wait=False)
        # the simulator must have seen the old connection go, or the next start would look subscribed
        if not wait_for(lambda: not any(c.events for c in self.sim.clients()), WAIT):
            raise AssertionError("the simulator still lists the killed daemon's connection")
        self.note_unasserted()
        # while the daemon is down, the world goes on; now and then FreeSWITCH restarts too
        if self.rng.randrange(8) == 0:
            self.sim.shutdown_restart()
            self.fs_restarts += 1
            # an ending the daemon never journaled, then FreeSWITCH restarted: all it can know is the restart
            self.shutdown_ok |= self.unseen_end
            self.calls.clear()
            self.sups.clear()
        for _ in range(self.rng.randint(0, 2)):
            self.act()
        if self.locker is None and self.rng.randrange(self.lock_every) == 0:
            self.locker = sqlite3.connect(self.db_path, isolation_level=None, timeout=WAIT)
            self.locker.execute("BEGIN EXCLUSIVE")
            self.locks += 1
        elif self.locker is not None and self.rng.randrange(2) == 0:
            self.unlock()
        self.blind.append((killed, time.time()))
        self.start_daemon()

    def note_unasserted(self) -> None:
        """Running eavesdrops that FreeSWITCH left in another mode than the one the daemon journaled
        last: it died before its command saying that mode got out (nothing it can help; the re-attach
        re-asserts it if the eavesdrop still runs by then)."""
        self.read_journal()  # complete: the daemon is dead, and FreeSWITCH has all it sent
        log = self.sim.eavesdrop_log()
        for uuid, entry in log.items():
            journaled = [m for m, _source, refused in self.seen.get(uuid, {}).get("modes", {}).values() if not refused]
            if entry["end"] is None and journaled and entry["modes"] and journaled[-1] != entry["modes"][-1][0]:
                self.unasserted[uuid] = journaled[-1]

    def start_intervention(self, sup: str | None = None) -> None:
        """A supervisor listening to an agent of its team (a call placed if the agent has none),
        running and journaled before a fault starts, so the fault has something to act on."""
        pairs = [(s, a) for s, a in TEAM_PAIRS if s not in self.sups and (sup is None or s == sup)]
        if not pairs:
            return
        sup, agent = self.rng.choice(pairs)
        if agent not in self.calls:
            self.calls[agent] = self.sim.place_call(self.rng.choice(CUSTOMERS), agent)
        uuid = self.sim.dial(sup, f"*33{agent}")
        self.sups[sup] = uuid
        self.attempts.append(uuid)
        log = self.sim.eavesdrop_log
        self.confirm(lambda: uuid in log() and bool(self.seen.get(uuid, {}).get("modes")))

    # -- a full journal filesystem -------------------------------------------------------------
    def journal_failures(self) -> int:
        try:
            return self.daemon_log.read_bytes().count(JOURNAL_FULL)
        except FileNotFoundError:
            return 0

    def fill_disk(self) -> None:
        """Fill the journal's filesystem, then make the daemon write until its journal is refused
        (tmpfs lets a file grow into the rest of its last page: a few lines still fit), then hang
        up a running intervention: its close is what must survive in memory."""
        assert self.disk is not None and self.daemon is not None
        self.start_intervention()
        before = self.journal_failures()
        self.disk.fill()
        self.full_left = self.rng.randint(1, 3)
        self.disk_fulls += 1
        for _ in range(40):  # refused requests (an agent is no supervisor): one journal line each
            if self.journal_failures() > before:
                break
            uuid = self.sim.dial(self.rng.choice(AGENTS), f"*33{self.rng.choice(AGENTS)}")
            self.attempts.append(uuid)
            wait_for(lambda: self.sim.channel(uuid) is None or self.journal_failures() > before, CONFIRM_SECONDS)
        unseen = set(self.unseen_end)
        log = self.sim.eavesdrop_log()
        running = [s for s, u in self.sups.items() if u in log and log[u]["end"] is None]
        if running:
            self.hang_up(self.sups.pop(self.rng.choice(sorted(running))))
        self.note_ends()
        self.full_unseen |= self.unseen_end - unseen

    def free_disk(self, *, wait: bool = True) -> None:
        """Space again: every ending held meanwhile must reach the journal (then it is judged as if
        it had been journaled at once: with its own end reason)."""
        assert self.disk is not None
        self.disk.free()
        self.full_left = 0
        held, self.full_unseen = self.full_unseen, set()
        if not wait:
            return

        def journaled() -> bool:
            self.read_journal()
            return all(self.seen.get(u, {}).get("closed") for u in held)

        wait_for(journaled, HELD_SECONDS)
        for uuid in held:
            if self.seen.get(uuid, {}).get("closed"):
                self.unseen_end.discard(uuid)
                self.held_closes += 1

    # -- a change the database refuses ----------------------------------------------------------
    def poison(self) -> None:
        """A trigger refuses one supervisor's records (as a constraint an administrator added would)."""
        free = [sup for sup, _ in TEAM_PAIRS if sup not in self.sups]
        if not free:
            return
        self.poisoned = self.rng.choice(free)
        self.poison_left = self.rng.randint(2, 5)
        self.poisons += 1
        with sqlite3.connect(self.db_path, isolation_level=None, timeout=10) as db:
            db.execute(f"CREATE TRIGGER fault_refuse BEFORE INSERT ON interventions WHEN NEW.supervisor = '{self.poisoned}' "
                       "BEGIN SELECT RAISE(ABORT, 'refused by the fault campaign'); END")
        self.start_intervention(self.poisoned)
        # a change of another record the database does take: the refused ones are then to blame
        uuid = self.sim.dial(self.rng.choice(AGENTS), f"*33{self.rng.choice(AGENTS)}")
        self.attempts.append(uuid)
        wait_for(lambda: read_entries(quarantine_path(self.journal_path)), CONFIRM_SECONDS * 2)

    def cure(self) -> bool:
        """Drop the trigger and retry the quarantine (`fsbarge audit quarantine retry`); False when
        the database is locked right now (the campaign's own lock): retried later."""
        if self.locker is not None:
            return False
        if self.poisoned is not None:
            with sqlite3.connect(self.db_path, isolation_level=None, timeout=10) as db:
                db.execute("DROP TRIGGER IF EXISTS fault_refuse")
            self.poisoned = None
        env = dict(os.environ, FSBARGE_CONFIG=str(self.config))
        done = subprocess.run([sys.executable, "-m", "fsbarge", "audit", "quarantine", "retry"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        applied = done.stdout.split(" quarantined audit change", 1)[0]
        self.quarantined += int(applied) if applied.isdigit() else 0
        return True

    def faults(self) -> None:
        """Start or end this round's faults (at most one of each at a time)."""
        if self.daemon is None:
            return
        if self.full_left:
            self.full_left -= 1
            if not self.full_left:
                self.free_disk()
        elif self.disk is not None and (self.rng.randrange(self.fault_every) == 0 or (self.step == 4 and not self.disk_fulls)):
            self.fill_disk()
        if self.poisoned is not None:
            self.poison_left -= 1
            if self.poison_left <= 0:
                self.cure()
        elif self.locker is None and (self.rng.randrange(self.fault_every) == 0 or (self.step == 8 and not self.poisons)):
            self.poison()

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
        main, self.rng = self.rng, self.silence_rng
        try:
            for _ in range(self.rng.randint(1, 3)):
                self.act(hangups=False)
        finally:
            self.rng = main
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
                self.faults()
                self.act()
                if self.rng.randrange(3) == 0:
                    self.kill()
                elif self.silence_rng.randrange(self.silence_every) == 0:
                    self.silence()
            self.unlock()
            if self.full_left:
                self.free_disk()
            self.finish()
            return self.check()
        finally:
            try:
                self.unlock()
                if self.daemon is not None:
                    try:
                        self.daemon.terminate()
                    except subprocess.TimeoutExpired:  # a daemon that will not stop is killed, not left behind
                        self.daemon.kill()
                        raise
                self.sim.stop()
            finally:
                if self.disk is not None:  # never leave a mount behind, whatever failed above
                    self.disk.close()

    def finish(self) -> None:
        """Everyone hangs up; wait until the database has every intervention the journal showed, none
        still open, and the daemon's audit backlog is empty (else it says what is missing)."""
        for uuid in list(self.sups.values()):
            self.hang_up(uuid)
        for call in self.calls.values():
            self.hang_up(call.a_uuid)
        self.sups.clear()
        self.calls.clear()
        self.note_ends()
        wait_for(lambda: not self.sim.channels(), WAIT)
        engine = make_engine(f"sqlite:///{self.db_path}")
        audit = AuditStore(engine)
        caught_up_at: list[float] = []  # when the database last had every journaled intervention

        def settled() -> bool:
            """Every intervention the journal showed is in the database (by its uid) and none is
            still open there, and then a heartbeat of the daemon's reports an empty audit backlog:
            a count of records would do as well with a row the journal read never showed (a
            refusal opened, closed, shipped and compacted between two reads) standing in for a
            change still waiting in the shipper's retry, and the daemon would be stopped with it."""
            self.lagging = self.database_lag()
            if self.lagging:
                caught_up_at.clear()
                return False
            if not caught_up_at:
                caught_up_at.append(time.time())
            status = self.daemon_status()
            if status is None or float(status.get("at") or 0) <= caught_up_at[0]:
                self.lagging = ["no heartbeat of the daemon (status file) since the database caught up"]
                return False
            if status.get("journal_backlog") != 0:
                self.lagging = [f"the daemon's audit backlog is {status.get('journal_backlog')} (its last heartbeat)"]
                return False
            return True

        if self.poisons:
            self.cure()
        # a refused change may wait for the shipper's slow retry (10 s) before it is blamed or applied
        if not wait_for(settled, WAIT):
            if not self.poisons:
                raise AssertionError(f"the database did not catch up with the journal within {WAIT:.0f} s: {self.lag_text()}")
            self.cure()  # set aside after the first retry (the daemon had not seen the retry yet)
            if not wait_for(settled, WAIT):
                raise AssertionError(
                    f"the database did not catch up with the journal and the quarantine within {WAIT:.0f} s: {self.lag_text()}")
        self.records = audit.list(limit=None)
        self.left_quarantined = read_entries(quarantine_path(self.journal_path))
        engine.dispose()

    def database_lag(self) -> list[str]:
        """What the database still lacks of what the journal showed (read again first): [] once it has it all."""
        self.read_journal()
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            outcomes = dict(db.execute("SELECT uid, outcome FROM interventions").fetchall())
        finally:
            db.close()
        lag = [f"{sup}: journaled as {entry['uid']} ({entry['outcome']}), not in the database"
               for sup, entry in self.seen.items() if entry["uid"] not in outcomes]
        lag += [f"{uid}: still active in the database" for uid, outcome in outcomes.items() if outcome == "active"]
        return lag

    def daemon_status(self) -> dict[str, Any] | None:
        """The daemon's last heartbeat on local disk (fsbarge.heartbeat: written every watchdog round)."""
        try:
            return json.loads(status_file_path(self.journal_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def lag_text(self) -> str:
        lagging = self.lagging
        more = f" (and {len(lagging) - 10} more)" if len(lagging) > 10 else ""
        return "; ".join(lagging[:10]) + more + f" (see {self.daemon_log})"

    def check(self) -> Result:
        log = self.sim.eavesdrop_log()
        by_sup: dict[str, list[dict[str, Any]]] = {}
        for r in self.records:
            by_sup.setdefault(r["supervisor_uuid"], []).append(r)
        wrong: list[str] = [f"still quarantined: {e['change'].get('kind')} {e['change'].get('uid')}: {e.get('error')}"
                            for e in self.left_quarantined]
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
            locks=self.locks, fs_restarts=self.fs_restarts, disk_fulls=self.disk_fulls, held_closes=self.held_closes,
            poisons=self.poisons, quarantined=self.quarantined, disk_note=self.disk_note, silences=self.silences,
        )

    def judge(self, uuid: str, rec: dict[str, Any], truth: dict[str, Any]) -> str | None:
        if rec["outcome"] == "active":
            return "still active"
        expected = END_REASONS.get(truth["end"] or "", "?")
        # A FreeSWITCH restart while the daemon was down is told by the Core-UUID: never a guess.
        allowed = {expected} | ({"daemon_restart"} if uuid in self.unseen_end and truth["end"] != "shutdown" else set())
        allowed |= {"freeswitch_shutdown"} if uuid in self.shutdown_ok and uuid in self.unseen_end else set()
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
        if uuid in self.unasserted:
            variants += [fold(v + [self.unasserted[uuid]]) for v in variants]
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
    if not blind:
        return None
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
          "the daemon was killed before it could see)")
    print(f"({result.disk_fulls} full journal filesystems, {result.held_closes} closes held across them; {result.poisons} "
          f"supervisors' records refused by a trigger, {result.quarantined} changes quarantined and applied by a retry"
          f"{'; ' + result.disk_note if result.disk_note else ''})")
    for problem in result.wrong:
        print("  " + problem)
    print(result.line)
    return 1 if result.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
