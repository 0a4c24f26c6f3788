"""The lab: a real PBX with fsbarge's drop-ins, the phones/carrier instance, and the real daemon.

A test sets up a call topology with the helpers here, sends a supervisor in with a feature code,
presses keys on the supervisor's phone (RFC 2833), and checks by audio who hears whom in each mode,
then checks the audit record. Optionally it keeps a raw ``event plain ALL`` capture of the PBX
(``FSBARGE_REALFS_CAPTURES=DIR``), the way ../shared/fixtures/esl-captures were recorded.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e import WAIT

from .audio import RATE, heard, read_samples, samples_written, seconds_heard
from .esl import Esl, EslError, Event, wait_until
from .freeswitch import (
    AGENT, AGENT2, AGENT3, CUSTOMER_TONE, PHONE_TONES, SUP, SUP2, SUP3, FreeSwitch, free_port, install_cross_node,
    make_phones_conf, make_pbx_conf, passwords,
)

ROOT = Path(__file__).resolve().parents[2]
SETTLE = 0.4  # seconds after a mode change before the audio window (RTP and jitter buffers)
WINDOW = 0.6  # seconds of audio analysed per mode
# The soft-entry tone: its own frequency, 2 s long (it spans a listening window after a mode
# change), and quiet enough that a leg hearing the call, a supervisor and the tone never clips.
NOTIFY_HZ = 1900
NOTIFY_STREAM = f"tone_stream://v=-24;%(2000,0,{NOTIFY_HZ})"
# What the agent hears when their help request is answered / when nobody answers: frequencies of
# their own, 4 s long (a listening window soon after the request ends fits inside; fsbarge removes a
# tone after 5 s at the latest).
HELP_ANSWERED_HZ, HELP_UNANSWERED_HZ = 2300, 2700
HELP_ANSWERED_STREAM = f"tone_stream://v=-24;%(4000,0,{HELP_ANSWERED_HZ})"
HELP_UNANSWERED_STREAM = f"tone_stream://v=-24;%(4000,0,{HELP_UNANSWERED_HZ})"
HELP_RING_SECONDS = 6
# What a refused supervisor hears before the hang-up, and a supervisor whose agent's call ended: as
# long as the defaults (900 / 800 ms), but one continuous tone each, at frequencies of their own
# (clear of every phone's tone and its harmonics), so a recording tells which one a phone heard and
# for how long.
ERROR_HZ, ERROR_SECONDS = 2900, 0.9
ENDED_HZ, ENDED_SECONDS = 1150, 0.8
ERROR_STREAM = f"tone_stream://%({int(ERROR_SECONDS * 1000)},0,{ERROR_HZ})"
ENDED_STREAM = f"tone_stream://%({int(ENDED_SECONDS * 1000)},0,{ENDED_HZ})"
MODE_KEYS = {"listen": "0", "customer_whisper": "1", "whisper": "2", "barge": "3"}
HEARS_SUPERVISOR = {"listen": set(), "whisper": {"agent"}, "barge": {"agent", "customer"},
                    "customer_whisper": {"customer"}}


@dataclass
class Leg:
    """A call leg on the phones instance: what one endpoint sends (``tone``) and receives (recording)."""

    uuid: str
    role: str
    tone: int
    recording: Path
    sip_call_id: str = ""


@dataclass
class Call:
    """One call as the test knows it: the endpoints' legs and the PBX legs they map to."""

    agent_ext: str
    agent: Leg
    customer: Leg
    customer_number: str
    pbx_agent_uuid: str = ""
    pbx_customer_uuid: str = ""
    extra: dict[str, Leg] = field(default_factory=dict)


class Lab:
    """Both FreeSWITCH instances and the daemon, for the whole test session.

    ``second_node``: a second PBX ("pbx2", the same site configuration) where agent 1000 also has a
    phone (gateway ``pbx2-1000``), both PBXs with the cross-node drop-ins, and the daemon serving
    both with each node's ``sip_address`` (its external profile)."""

    def __init__(self, binary: str, base: Path, *, second_node: bool = False) -> None:
        self.base = base
        self.pw = passwords()
        internal, external, phones_port, carrier_port = (free_port() for _ in range(4))
        self.external_port = external
        self.pbx = FreeSwitch("pbx", binary, base / "pbx", free_port(), "pbx-" + self.pw["default"])
        self.phones = FreeSwitch("phones", binary, base / "phones", free_port(), "phones-" + self.pw["default"])
        make_pbx_conf(binary, self.pbx, internal_port=internal, external_port=external, carrier_port=carrier_port,
                      user_passwords=self.pw)
        more_phones: dict[str, tuple[str, int]] = {}
        self.pbx2: FreeSwitch | None = None
        self.ctl2: Esl | None = None
        if second_node:
            internal2, self.external_port2 = free_port(), free_port()
            # one Event Socket secret for the site (FSBARGE_ESL_PASSWORD serves every node)
            self.pbx2 = FreeSwitch("pbx2", binary, base / "pbx2", free_port(), self.pbx.esl_password)
            make_pbx_conf(binary, self.pbx2, internal_port=internal2, external_port=self.external_port2,
                          carrier_port=carrier_port, user_passwords=self.pw)
            for pbx in (self.pbx, self.pbx2):
                install_cross_node(pbx.conf, ["127.0.0.1"])  # every node is on loopback here
            more_phones = {f"pbx2-{AGENT}": (AGENT, internal2)}
        self.more_phones = more_phones
        make_phones_conf(self.phones, phones_port=phones_port, carrier_port=carrier_port,
                         pbx_internal_port=internal, user_passwords=self.pw, more_phones=more_phones)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.db_url = f"sqlite:///{base / 'fsbarge.db'}"
        self.config = base / "fsbarge.toml"
        self.ctl: Esl | None = None  # PBX control connection (api)
        self.ph: Esl | None = None  # phones connection (api + events)
        self.capture_dir = Path(os.environ["FSBARGE_REALFS_CAPTURES"]) if os.environ.get("FSBARGE_REALFS_CAPTURES") else None

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.pbx.start()
        if self.pbx2 is not None:
            self.pbx2.start()
            self.ctl2 = self.pbx2.connect()
        self.phones.start()
        self.ctl = self.pbx.connect()
        self.ph = self.phones.connect(events="CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB")
        wait_until(self._all_registered, "every phone to register with the PBX")
        self._start_daemon()

    def _all_registered(self) -> bool:
        """The PBX lists every phone and every phone's gateway is registered and up."""
        assert self.ctl is not None and self.ph is not None
        regs = json.loads(self.ctl.api("show registrations as json") or "{}")
        users = {r.get("reg_user") for r in regs.get("rows", [])}
        if not set(PHONE_TONES) <= users:
            return False
        if self.ctl2 is not None:
            regs2 = json.loads(self.ctl2.api("show registrations as json") or "{}")
            if not {user for user, _ in self.more_phones.values()} <= {r.get("reg_user") for r in regs2.get("rows", [])}:
                return False
        for user in [*PHONE_TONES, *self.more_phones]:
            status = self.ph.api(f"sofia status gateway {user}", check=False)
            if not re.search(r"^State\s+REGED$", status, re.M) or not re.search(r"^Status\s+UP", status, re.M):
                return False
        return True

    def _start_daemon(self) -> None:
        second = ""
        if self.pbx2 is not None:
            second = f"""sip_address = "127.0.0.1:{self.external_port}"

[[freeswitch]]
name = "pbx2"
host = "127.0.0.1"
port = {self.pbx2.esl_port}
sip_address = "127.0.0.1:{self.external_port2}"
"""
        self.config.write_text(f"""
[[freeswitch]]
name = "pbx1"
host = "127.0.0.1"
port = {self.pbx.esl_port}
connect_timeout = 5.0
command_timeout = 5.0
{second}

[database]
url = "{self.db_url}"

[tones]
error = "{ERROR_STREAM}"
ended = "{ENDED_STREAM}"
notify = "{NOTIFY_STREAM}"
help_answered = "{HELP_ANSWERED_STREAM}"
help_unanswered = "{HELP_UNANSWERED_STREAM}"

[help]
ring_seconds = {HELP_RING_SECONDS}

[[teams]]
name = "sales"
agents = ["{AGENT}", "{AGENT2}"]
supervisors = ["{SUP}", "{SUP2}"]

[[teams]]
name = "support"
agents = ["{AGENT3}"]
supervisors = ["{SUP3}"]
modes = ["listen", "whisper"]
""")
        env = dict(os.environ, FSBARGE_ESL_PASSWORD=self.pbx.esl_password)
        self.daemon_log = self.base / "fsbarge.log"
        with open(self.daemon_log, "wb") as out:
            self.daemon = subprocess.Popen([sys.executable, "-m", "fsbarge", "run", "--config", str(self.config)],
                                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                           cwd=ROOT, start_new_session=True)

        def resynced() -> bool:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise EslError(f"fsbarge exited at start: {self.daemon_log.read_text()[-500:]}")
            return self.daemon_log.read_bytes().count(b"resynced from show channels") >= (2 if self.pbx2 else 1)

        wait_until(resynced, "fsbarge to connect to the PBX and resync")

    def stop(self) -> None:
        for closer in (self.ph, self.ctl, self.ctl2):
            if closer is not None:
                closer.close()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=WAIT)
        self.phones.stop()
        self.pbx.stop()
        if self.pbx2 is not None:
            self.pbx2.stop()

    # -- the audit trail, as QA reads it -----------------------------------------------------------
    def audit(self) -> list[dict]:
        env = dict(os.environ, FSBARGE_ESL_PASSWORD=self.pbx.esl_password)
        proc = subprocess.run([sys.executable, "-m", "fsbarge", "audit", "list", "--format", "json",
                               "--config", str(self.config)], capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"fsbarge audit list failed: {proc.stderr.strip()}")
        return json.loads(proc.stdout)

    def record_of(self, sup_pbx_uuid: str) -> dict | None:
        return next((r for r in self.audit() if r["supervisor_uuid"] == sup_pbx_uuid), None)

    def wait_record(self, sup_pbx_uuid: str, what: str, pred, timeout: float = WAIT) -> dict:
        return wait_until(lambda: (r := self.record_of(sup_pbx_uuid)) is not None and pred(r) and r,
                          f"the audit record to show {what}", timeout, interval=0.1)  # type: ignore[return-value]

    # -- endpoints ----------------------------------------------------------------------------------
    def _leg(self, uuid: str, role: str, tone: int) -> Leg:
        return Leg(uuid, role, tone, self.phones.dirs["recordings"] / f"{uuid}.wav")

    def originate(self, url: str, tone: int, role: str, cid: str | None = None) -> Leg:
        """A phone (or the carrier) places a call; it answers into ``speak-<tone>`` when answered."""
        assert self.ph is not None
        u = str(uuidlib.uuid4())
        vars_ = f"origination_uuid={u},ignore_early_media=true"
        if cid:
            vars_ += f",origination_caller_id_number={cid},origination_caller_id_name=Customer"
        self.ph.send(f"bgapi originate {{{vars_}}}{url} speak-{tone} XML phones")
        return self._leg(u, role, tone)

    def carrier_call(self, did: str, cid: str, tone: int = CUSTOMER_TONE, role: str = "customer",
                     port: int | None = None) -> Leg:
        return self.originate(f"sofia/carrier/{did}@127.0.0.1:{port or self.external_port}", tone, role, cid)

    def phone_call(self, user: str, dest: str, role: str) -> Leg:
        return self.originate(f"sofia/gateway/{user}/{dest}", PHONE_TONES[user], role)

    def answered(self, leg: Leg, start: int = 0) -> Leg:
        """Wait for ``leg`` (placed by us) to be answered; learn its SIP Call-ID."""
        assert self.ph is not None
        ev = self.ph.wait_event(lambda e: e.name == "CHANNEL_ANSWER" and e.get("Unique-ID") == leg.uuid,
                                f"{leg.role}'s call to be answered", start=start)
        leg.sip_call_id = ev.get("variable_sip_call_id") or self.ph.api(f"uuid_getvar {leg.uuid} sip_call_id").strip()
        return leg

    def incoming(self, tone: int, role: str, start: int) -> Leg:
        """The next call a phone answered into ``speak-<tone>`` (the PBX called it), from event ``start``."""
        assert self.ph is not None
        ev = self.ph.wait_event(lambda e: e.name == "CHANNEL_ANSWER" and e.get("Call-Direction") == "inbound"
                                and e.get("Caller-Destination-Number") in (f"speak-{tone}",)
                                or (e.name == "CHANNEL_ANSWER" and e.get("Call-Direction") == "inbound"
                                    and e.get("variable_sip_gateway_name") is not None
                                    and e.get("Caller-Destination-Number") == f"speak-{tone}"),
                                f"the {role} phone to answer", start=start)
        leg = self._leg(ev["Unique-ID"], role, tone)
        leg.sip_call_id = ev.get("variable_sip_call_id") or ""
        return leg

    def mark(self) -> int:
        assert self.ph is not None
        return len(self.ph.events)

    def pbx_uuid_of(self, leg: Leg, ctl: Esl | None = None) -> str:
        """The PBX's uuid of the SIP dialog whose other end is ``leg`` (same Call-ID); ``ctl``: another
        PBX's control connection (the second node)."""
        pbx = ctl or self.ctl
        assert pbx is not None
        if not leg.sip_call_id:
            leg.sip_call_id = self.ph.api(f"uuid_getvar {leg.uuid} sip_call_id").strip()  # type: ignore[union-attr]

        def find() -> str | None:
            rows = json.loads(pbx.api("show channels as json")).get("rows", [])
            for row in rows:
                if pbx.api(f"uuid_getvar {row['uuid']} sip_call_id", check=False).strip() == leg.sip_call_id:
                    return row["uuid"]
            return None

        return wait_until(find, f"the PBX leg of the {leg.role}'s SIP dialog")  # type: ignore[return-value]

    def press(self, leg: Leg, digit: str) -> None:
        """The phone sends an RFC 2833 telephone-event."""
        assert self.ph is not None
        self.ph.api(f"uuid_send_dtmf {leg.uuid} {digit}")

    def hangup(self, leg: Leg) -> None:
        assert self.ph is not None
        self.ph.api(f"uuid_kill {leg.uuid}", check=False)

    def ended(self, leg: Leg, start: int = 0, timeout: float = WAIT) -> None:
        """Wait for the PBX to end the call of ``leg`` (placed or answered by us): its recording is complete."""
        assert self.ph is not None
        self.ph.wait_event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.get("Unique-ID") == leg.uuid,
                           f"the {leg.role}'s call to end", start=start, timeout=timeout)

    def heard_seconds(self, leg: Leg, freqs: dict[str, float]) -> dict[str, float]:
        """How long ``leg``'s phone heard each tone in all it received (after its call ended). A call
        hung up before the phone's dialplan started recording heard nothing."""
        samples = read_samples(leg.recording) if leg.recording.exists() else array("h")
        return {name: seconds_heard(samples, f) for name, f in freqs.items()}

    def phones_answer(self, on: bool) -> None:
        """Off: a call the PBX places to a phone from now on rings there and is never answered (the
        phones' dialplan checks the global variable ``lab_no_answer``); on: the phones answer again."""
        assert self.ph is not None
        self.ph.api(f"global_setvar lab_no_answer={'false' if on else 'true'}")

    def hold(self, leg: Leg, on: bool = True) -> None:
        """The phone puts its call on hold (re-INVITE a=sendonly) or takes it off hold; waits for the
        PBX to show its leg HELD / ACTIVE."""
        assert self.ph is not None and self.ctl is not None
        pbx_leg = self.pbx_uuid_of(leg)
        self.ph.api(f"uuid_hold {'' if on else 'off '}{leg.uuid}")
        want = "HELD" if on else "ACTIVE"

        def callstate() -> bool:
            rows = json.loads(self.ctl.api("show channels as json")).get("rows", [])  # type: ignore[union-attr]
            return any(r["uuid"] == pbx_leg and r.get("callstate") == want for r in rows)

        wait_until(callstate, f"the PBX to show the {leg.role}'s leg {want}")

    # -- hearing ------------------------------------------------------------------------------------
    def listen_window(self, legs: list[Leg], since: float | None = None) -> dict[str, array]:
        """What each leg receives from SETTLE to SETTLE + WINDOW seconds after ``since`` (an epoch
        time, e.g. when the daemon recorded a mode change; default now).

        The phones write their recordings in 20 ms steps (enable_file_write_buffering=320), so a
        recording's length is where "now" is in it; waiting for it to grow is waiting for the audio.
        A past ``since`` reads back into the recording: on a busy machine the record of a change can
        reach the database seconds after the change, and a tone that lasts 2 s from it is gone by then.
        """
        back = 0 if since is None else max(0, int((time.time() - since) * RATE))
        starts = {leg.uuid: samples_written(leg.recording) - back + int(SETTLE * RATE) for leg in legs}
        need = int(WINDOW * RATE)
        lagging = lambda: [leg.role for leg in legs if samples_written(leg.recording) < starts[leg.uuid] + need]  # noqa: E731
        try:
            wait_until(lambda: not lagging(), "audio")
        except EslError:
            raise EslError(f"no audio recorded by {', '.join(lagging())} within {WAIT:.0f} s (no RTP from the PBX?)") from None
        return {leg.role: read_samples(leg.recording, starts[leg.uuid], need) for leg in legs}

    def assert_hearing(self, legs: list[Leg], expected: dict[str, set[str]], context: str,
                       optional: dict[str, set[str]] | None = None) -> None:
        """Each leg's recording holds exactly the expected tones (``optional`` ones may or may not be there)."""
        tones = {leg.role: leg.tone for leg in legs}
        window = self.listen_window(legs)
        for leg in legs:
            others = {r: f for r, f in tones.items() if r != leg.role and f != leg.tone}
            got = heard(window[leg.role], others, f"{context}: {leg.role}")
            want = expected[leg.role]
            maybe = (optional or {}).get(leg.role, set())
            if not (want <= got <= want | maybe):
                raise AssertionError(f"{context}: the {leg.role} hears {sorted(got)}, expected {sorted(want)}")

    # -- captures ---------------------------------------------------------------------------------
    def start_capture(self) -> Esl:
        return self.pbx.connect(events="ALL", keep_raw=True)

    def save_capture(self, name: str, capture: Esl, roles: dict[str, str], snapshots: dict[str, str]) -> None:
        """Keep the raw capture (gzip), the snapshots and who is who, if FSBARGE_REALFS_CAPTURES is set."""
        capture.close()
        if self.capture_dir is None:
            return
        d = self.capture_dir / name
        d.mkdir(parents=True, exist_ok=True)
        with gzip.open(d / "events-plain.raw.gz", "wb", compresslevel=9) as f:
            f.write(scrub(bytes(capture.raw), self.base))
        for snap_name, body in snapshots.items():
            (d / f"show_channels_as_json_{snap_name}.json").write_bytes(scrub(body.encode(), self.base))
        (d / "roles.json").write_text(json.dumps(roles, indent=1, sort_keys=True) + "\n")

    def hang_up_everything(self) -> None:
        """After a topology (passed or not): no call may leak into the next one."""
        assert self.ctl is not None and self.ph is not None
        self.ph.api("hupall NORMAL_CLEARING", check=False)
        for ctl in (self.ctl, self.ctl2):
            if ctl is not None:
                ctl.api("hupall NORMAL_CLEARING", check=False)
        self.wait_pbx_idle()

    def wait_pbx_idle(self, timeout: float = WAIT) -> None:
        """Every channel of the PBX (and of the second one, if any) has ended."""
        for ctl in (self.ctl, self.ctl2):
            if ctl is not None:
                wait_until(lambda c=ctl: json.loads(c.api("show channels as json")).get("row_count") == 0,
                           "every PBX channel to end", timeout)


def scrub(data: bytes, base: Path) -> bytes:
    """Replace this machine's temporary directory with a placeholder of the same length (so every
    Content-Length stays true): no machine paths in the repository."""
    path = str(base).encode()
    placeholder = (b"/realfs-base" + b"_" * len(path))[: len(path)]
    return data.replace(path, placeholder)


def supervisor_leg(lab: Lab, user: str, code: str, ext: str) -> Leg:
    """Supervisor ``user`` dials ``*3x<ext>`` from their desk phone."""
    return lab.phone_call(user, f"{code}{ext}", f"supervisor{'' if user in (SUP, SUP3) else '2'}")


__all__ = ["Call", "Event", "Lab", "Leg", "ENDED_HZ", "ENDED_SECONDS", "ERROR_HZ", "ERROR_SECONDS", "HEARS_SUPERVISOR",
           "HELP_ANSWERED_HZ", "HELP_UNANSWERED_HZ", "MODE_KEYS", "NOTIFY_HZ", "supervisor_leg"]
