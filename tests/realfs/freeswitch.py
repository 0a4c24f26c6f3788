"""Start and stop real FreeSWITCH processes for the suite: the PBX under test and a "phones" instance.

The PBX gets the stock configuration of the installed FreeSWITCH with the project's
freeswitch-conf/ drop-ins installed the way freeswitch-conf/README.md tells an administrator to
(copy, replace CHANGE_ME, change default_password), plus what any site adds: its own SIP ports,
a carrier gateway, DIDs, a callcenter queue. The phones instance is a minimal FreeSWITCH whose
sofia gateways register to the PBX as directory users (the agents' and supervisors' phones) and
whose "carrier" profile plays the SIP trunk. Everything listens on 127.0.0.1 only, on free ports;
each process is stopped by its pid.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e import WAIT

from .esl import Esl, EslError, wait_until

ROOT = Path(__file__).resolve().parents[2]
DROP_INS = ROOT / "freeswitch-conf"

# Who is who: directory user -> the tone (Hz) its phone sends. Distinct, no harmonics of each other.
AGENT, AGENT2, AGENT3, SUP, SUP2, SUP3 = "1000", "1004", "1010", "1002", "1005", "1012"
PHONE_TONES = {AGENT: 500, AGENT2: 650, AGENT3: 500, SUP: 1700, SUP2: 1250, SUP3: 1700}
CUSTOMER_TONE, CUSTOMER2_TONE = 850, 1050
HOLD_TONE = 350  # the PBX's hold music
CARRIER_DIDS = {"5551212": AGENT, "5551214": AGENT2, "5551210": AGENT3, "5551215": "queue"}
OUTBOUND_PREFIX = "9"


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (SIP uses both)."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise EslError("no free loopback port")


def stock_conf_dir(binary: str) -> Path:
    """The configuration a `make install` of FreeSWITCH installs beside its binary (<prefix>/conf)."""
    env = os.environ.get("FSBARGE_FREESWITCH_CONF")
    prefix = Path(os.path.realpath(binary)).parent.parent
    conf = Path(env) if env else prefix / "conf"
    if not (conf / "freeswitch.xml").is_file() or not (conf / "vars.xml").is_file():
        raise EslError(f"no stock FreeSWITCH configuration at {conf} (set FSBARGE_FREESWITCH_CONF)")
    return conf


@dataclass
class FreeSwitch:
    """One FreeSWITCH process with its own conf/run/log/db directories under ``base``."""

    name: str
    binary: str
    base: Path
    esl_port: int
    esl_password: str
    proc: subprocess.Popen[bytes] | None = None
    dirs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in ("conf", "log", "run", "db", "temp", "storage", "cache", "recordings", "sounds", "scripts"):
            self.dirs[d] = self.base / d
            self.dirs[d].mkdir(parents=True, exist_ok=True)

    @property
    def conf(self) -> Path:
        return self.dirs["conf"]

    @property
    def log_file(self) -> Path:
        return self.dirs["log"] / "freeswitch.log"

    def start(self, timeout: float = 2 * WAIT) -> None:
        args = [self.binary, "-nf", "-nc", "-nonat"]
        for d in ("conf", "log", "run", "db", "temp", "storage", "cache", "recordings", "sounds", "scripts"):
            args += [f"-{d}", str(self.dirs[d])]
        stderr = open(self.dirs["log"] / "stderr.log", "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                     cwd=self.base, start_new_session=True)
        stderr.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise EslError(f"FreeSWITCH {self.name} exited at start ({self.proc.returncode}); see {self.log_file}")
            try:
                esl = Esl(self.esl_port, self.esl_password, timeout=5)
            except (OSError, EslError):
                return False
            try:
                return "is ready" in esl.api("status", check=False)
            finally:
                esl.close()

        wait_until(ready, f"FreeSWITCH {self.name} to accept Event Socket connections", timeout)

    def connect(self, events: str | None = None, keep_raw: bool = False) -> Esl:
        return Esl(self.esl_port, self.esl_password, events=events, keep_raw=keep_raw)

    def stop(self) -> None:
        """SIGTERM to our pid (FreeSWITCH shuts down cleanly on it), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT)


# -- the PBX under test -----------------------------------------------------------------------------
def _sub(path: Path, pattern: str, repl: str, count: int = 1) -> None:
    text = path.read_text()
    new, n = re.subn(pattern, repl, text, count=count)
    if n == 0:
        raise EslError(f"{path.name}: {pattern!r} not found in the stock configuration")
    path.write_text(new)


def install_drop_ins(conf: Path, esl_password: str, user_passwords: dict[str, str]) -> None:
    """What freeswitch-conf/README.md tells an administrator to do, step by step."""
    shutil.copy(DROP_INS / "dialplan/default/01_fsbarge.xml", conf / "dialplan/default/")
    shutil.copy(DROP_INS / "autoload_configs/event_socket.conf.xml", conf / "autoload_configs/")
    for user in ("1000", "1002", "1004"):
        shutil.copy(DROP_INS / f"directory/default/{user}.xml", conf / "directory/default/")
    # "Then replace every CHANGE_ME": the Event Socket secret and each phone's SIP password.
    _sub(conf / "autoload_configs/event_socket.conf.xml", r'value="CHANGE_ME"', f'value="{esl_password}"')
    for user in ("1000", "1002", "1004"):
        _sub(conf / f"directory/default/{user}.xml", r'name="password" value="CHANGE_ME"', f'name="password" value="{user_passwords[user]}"')
        _sub(conf / f"directory/default/{user}.xml", r'name="vm-password" value="CHANGE_ME"', f'name="vm-password" value="9{user}"')
    # "change default_password in <conf>/vars.xml" (else every call sleeps 10 s in the default context)
    _sub(conf / "vars.xml", r'data="default_password=1234"', f'data="default_password={user_passwords["default"]}"')


def install_cross_node(conf: Path, other_nodes: list[str]) -> None:
    """freeswitch-conf/README.md, "Barging across nodes": the fsbarge_node extension in the public
    context, and the ACL list of the other nodes' addresses in acl.conf.xml."""
    shutil.copy(DROP_INS / "dialplan/public/01_fsbarge_node.xml", conf / "dialplan/public/")
    nodes = "".join(f'\n      <node type="allow" cidr="{ip}/32"/>' for ip in other_nodes)
    _sub(conf / "autoload_configs/acl.conf.xml", r"(</network-lists>)",
         f'  <list name="fsbarge_nodes" default="deny">{nodes}\n    </list>\n  \\1')


def make_pbx_conf(binary: str, pbx: FreeSwitch, *, internal_port: int, external_port: int, carrier_port: int,
                  user_passwords: dict[str, str]) -> None:
    """The stock configuration, the project's drop-ins, and this site's own settings (ports, trunk, queue)."""
    conf = pbx.conf
    shutil.rmtree(conf)
    shutil.copytree(stock_conf_dir(binary), conf)
    install_drop_ins(conf, pbx.esl_password, user_passwords)
    # The site: loopback only, its own ports, no STUN lookups, a quiet hold.
    vars_xml = conf / "vars.xml"
    _sub(vars_xml, r"(<include>)", r'\1\n  <X-PRE-PROCESS cmd="set" data="local_ip_v4=127.0.0.1"/>')
    _sub(vars_xml, r'cmd="stun-set" data="external_rtp_ip=[^"]*"', 'cmd="set" data="external_rtp_ip=127.0.0.1"')
    _sub(vars_xml, r'cmd="stun-set" data="external_sip_ip=[^"]*"', 'cmd="set" data="external_sip_ip=127.0.0.1"')
    _sub(vars_xml, r'data="internal_sip_port=\d+"', f'data="internal_sip_port={internal_port}"')
    _sub(vars_xml, r'data="external_sip_port=\d+"', f'data="external_sip_port={external_port}"')
    _sub(vars_xml, r'data="internal_tls_port=\d+"', f'data="internal_tls_port={free_port()}"')
    _sub(vars_xml, r'data="external_tls_port=\d+"', f'data="external_tls_port={free_port()}"')
    _sub(vars_xml, r'data="hold_music=[^"]*"', f'data="hold_music=tone_stream://%(1000,0,{HOLD_TONE});loops=-1"')
    _sub(vars_xml, r'data="global_codec_prefs=[^"]*"', 'data="global_codec_prefs=PCMU"')
    _sub(vars_xml, r'data="outbound_codec_prefs=[^"]*"', 'data="outbound_codec_prefs=PCMU"')
    _sub(conf / "autoload_configs/event_socket.conf.xml", r'name="listen-port" value="\d+"',
         f'name="listen-port" value="{pbx.esl_port}"')
    for p in conf.glob("sip_profiles/*ipv6*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in (conf / "sip_profiles/external").glob("*.xml"):
        p.unlink()
    (conf / "sip_profiles/external/carrier.xml").write_text(f"""<include>
  <gateway name="carrier">
    <param name="proxy" value="127.0.0.1:{carrier_port}"/>
    <param name="register" value="false"/>
    <param name="caller-id-in-from" value="true"/>
  </gateway>
</include>
""")
    modules = ["mod_console", "mod_logfile", "mod_event_socket", "mod_sofia", "mod_loopback", "mod_commands",
               "mod_conference", "mod_db", "mod_dptools", "mod_fifo", "mod_hash", "mod_callcenter",
               "mod_dialplan_xml", "mod_sndfile", "mod_native_file", "mod_tone_stream", "mod_say_en"]
    (conf / "autoload_configs/modules.conf.xml").write_text(
        '<configuration name="modules.conf" description="Modules">\n  <modules>\n'
        + "".join(f'    <load module="{m}"/>\n' for m in modules)
        + "  </modules>\n</configuration>\n")
    # The site's trunk: DIDs in the public context, and an outbound route through the carrier.
    dids = "".join(
        f'  <extension name="realfs_did_{did}">\n    <condition field="destination_number" expression="^{did}$">\n'
        + ('      <action application="answer"/>\n      <action application="callcenter" data="sales@default"/>\n'
           if target == "queue" else
           f'      <action application="set" data="domain_name=$${{domain}}"/>\n'
           f'      <action application="transfer" data="{target} XML default"/>\n')
        + "    </condition>\n  </extension>\n"
        for did, target in CARRIER_DIDS.items() if did != "5551212")  # 5551212 -> 1000 is stock
    (conf / "dialplan/public/10_realfs_dids.xml").write_text(f"<include>\n{dids}</include>\n")
    # Before the stock 01_example.com.xml, whose "domestic" route takes every 11-digit number from a
    # user with toll_allow (the stock users have it) to the example.com gateway, as a site's own
    # outbound route would be.
    (conf / "dialplan/default/00_realfs_outbound.xml").write_text(f"""<include>
  <extension name="realfs_outbound">
    <condition field="destination_number" expression="^{OUTBOUND_PREFIX}(\\d{{10}})$">
      <action application="set" data="hangup_after_bridge=true"/>
      <action application="bridge" data="sofia/gateway/carrier/$1"/>
    </condition>
  </extension>
</include>
""")
    (conf / "autoload_configs/callcenter.conf.xml").write_text(f"""<configuration name="callcenter.conf" description="CallCenter">
  <settings/>
  <queues>
    <queue name="sales@default">
      <param name="strategy" value="longest-idle-agent"/>
      <param name="moh-sound" value="$${{hold_music}}"/>
      <param name="time-base-score" value="system"/>
      <param name="max-wait-time" value="0"/>
      <param name="max-wait-time-with-no-agent" value="0"/>
      <param name="max-wait-time-with-no-agent-time-reached" value="5"/>
      <param name="tier-rules-apply" value="false"/>
      <param name="discard-abandoned-after" value="60"/>
    </queue>
  </queues>
  <agents>
    <agent name="{AGENT}@default" type="callback" contact="[leg_timeout=10]user/{AGENT}" status="Available"
           max-no-answer="3" wrap-up-time="1" reject-delay-time="1" busy-delay-time="1"/>
  </agents>
  <tiers>
    <tier agent="{AGENT}@default" queue="sales@default" level="1" position="1"/>
  </tiers>
</configuration>
""")


# -- the phones and the carrier ---------------------------------------------------------------------
def make_phones_conf(phones: FreeSwitch, *, phones_port: int, carrier_port: int, pbx_internal_port: int,
                     user_passwords: dict[str, str], more_phones: dict[str, tuple[str, int]] | None = None) -> None:
    """A minimal FreeSWITCH: one gateway per desk phone registered to the PBX, and a carrier profile.

    Every call a phone or the carrier answers or places runs ``speak-<Hz>``: record what it receives
    (``<recordings>/<uuid>.wav``) and send its own continuous tone.
    """
    def gateway(name: str, user: str, port: int, tone: int) -> str:
        return f"""
          <gateway name="{name}">
            <param name="username" value="{user}"/>
            <param name="password" value="{user_passwords.get(user, user_passwords['default'])}"/>
            <param name="realm" value="127.0.0.1"/>
            <param name="proxy" value="127.0.0.1:{port}"/>
            <param name="register" value="true"/>
            <param name="expire-seconds" value="600"/>
            <param name="extension" value="speak-{tone}"/>
            <param name="caller-id-in-from" value="true"/>
          </gateway>"""

    gateways = "".join(gateway(user, user, pbx_internal_port, tone) for user, tone in PHONE_TONES.items())
    # phones registered to another PBX: gateway name -> (directory user, that PBX's internal port)
    gateways += "".join(gateway(gw, user, port, PHONE_TONES[user]) for gw, (user, port) in (more_phones or {}).items())

    def profile(name: str, port: int, context: str, extra: str = "") -> str:
        return f"""
      <profile name="{name}">
        <gateways>{extra}</gateways>
        <settings>
          <param name="context" value="{context}"/>
          <param name="dialplan" value="XML"/>
          <param name="sip-ip" value="127.0.0.1"/>
          <param name="rtp-ip" value="127.0.0.1"/>
          <param name="ext-sip-ip" value="127.0.0.1"/>
          <param name="ext-rtp-ip" value="127.0.0.1"/>
          <param name="sip-port" value="{port}"/>
          <param name="auth-calls" value="false"/>
          <param name="accept-blind-reg" value="true"/>
          <param name="inbound-codec-prefs" value="PCMU"/>
          <param name="outbound-codec-prefs" value="PCMU"/>
          <param name="dtmf-type" value="rfc2833"/>
          <param name="rtp-timer-name" value="soft"/>
          <param name="rfc2833-pt" value="101"/>
          <param name="manage-presence" value="false"/>
          <param name="inbound-late-negotiation" value="false"/>
        </settings>
      </profile>"""

    # While the lab says so (global variable lab_no_answer, see Lab.phones_answer), a phone the PBX
    # calls rings (180) and is never answered: a supervisor who does not pick up.
    speak = """
      <extension name="no-answer">
        <condition field="${lab_no_answer}" expression="^true$"/>
        <condition field="destination_number" expression="^speak-">
          <action application="ring_ready"/>
          <action application="sleep" data="600000"/>
        </condition>
      </extension>""" + "".join(f"""
      <extension name="speak-{tone}">
        <condition field="destination_number" expression="^speak-{tone}$">
          <action application="answer"/>
          <action application="set" data="RECORD_READ_ONLY=true"/>
          <action application="set" data="enable_file_write_buffering=320"/>
          <action application="record_session" data="{phones.dirs['recordings']}/${{uuid}}.wav"/>
          <action application="playback" data="tone_stream://%(1000,0,{tone});loops=-1"/>
        </condition>
      </extension>""" for tone in sorted(set(PHONE_TONES.values()) | {CUSTOMER_TONE, CUSTOMER2_TONE}))
    (phones.conf / "freeswitch.xml").write_text(f"""<?xml version="1.0"?>
<document type="freeswitch/xml">
  <section name="configuration">
    <configuration name="switch.conf">
      <settings>
        <param name="max-sessions" value="200"/>
        <param name="sessions-per-second" value="100"/>
        <param name="rtp-start-port" value="40000"/>
        <param name="rtp-end-port" value="44999"/>
      </settings>
    </configuration>
    <configuration name="modules.conf">
      <modules>
        <load module="mod_logfile"/>
        <load module="mod_event_socket"/>
        <load module="mod_sofia"/>
        <load module="mod_commands"/>
        <load module="mod_dptools"/>
        <load module="mod_dialplan_xml"/>
        <load module="mod_sndfile"/>
        <load module="mod_tone_stream"/>
      </modules>
    </configuration>
    <configuration name="logfile.conf">
      <settings><param name="rotate-on-hup" value="true"/></settings>
      <profiles><profile name="default"><settings>
        <param name="rollover" value="104857600"/>
      </settings><mappings><map name="all" value="info,notice,warning,err,crit,alert"/></mappings></profile></profiles>
    </configuration>
    <configuration name="event_socket.conf">
      <settings>
        <param name="listen-ip" value="127.0.0.1"/>
        <param name="listen-port" value="{phones.esl_port}"/>
        <param name="password" value="{phones.esl_password}"/>
      </settings>
    </configuration>
    <configuration name="sofia.conf">
      <global_settings><param name="log-level" value="0"/></global_settings>
      <profiles>{profile("phones", phones_port, "phones", gateways)}{profile("carrier", carrier_port, "phones")}
      </profiles>
    </configuration>
  </section>
  <section name="dialplan">
    <context name="phones">{speak}
      <extension name="carrier-callee">
        <condition field="destination_number" expression="^\\d{{10}}$">
          <action application="transfer" data="speak-{CUSTOMER_TONE} XML phones"/>
        </condition>
      </extension>
    </context>
  </section>
</document>
""")


def passwords() -> dict[str, str]:
    """Fresh random secrets for the phones (per user) and the stock default_password."""
    return {u: secrets.token_hex(8) for u in ("1000", "1002", "1004", "default")}
