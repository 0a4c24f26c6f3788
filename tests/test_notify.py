"""Soft entry: who hears the notification tone when a supervisor enters a mode (pure rules,
the command, the configuration, and the record)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fsbarge.core.barge import NOTIFY_LIMIT, AddMode, Execute, MixTone, StopTone, Tones
from fsbarge.core.commands import mix_tone, stop_tone, to_command
from fsbarge.config import ConfigError, TeamConfig, load_config
from fsbarge.core.intervention import Intervention
from fsbarge.core.notify import Notifier
from fsbarge.core.policy import Policy

from .factories import AGENT, CUSTOMER, ENDED_TONE, ERROR_TONE, SUP, Rig, bug, dtmf, execute, park
from .test_barge import of, started

NOTIFY = "tone_stream://%(100,0,1400)"


def rig(**teams: tuple[str, ...]) -> Rig:
    r = Rig()
    r.machine.tones = Tones(ERROR_TONE, ENDED_TONE, NOTIFY)
    if teams:
        cfg = r.machine.policy.config
        sales = dataclasses.replace(cfg.teams[0], **teams)
        r.machine.policy = Policy(dataclasses.replace(cfg, teams=(sales, *cfg.teams[1:])))
    r.call()
    return r


@pytest.mark.parametrize(
    ("mode", "legs", "notified"),
    [("listen", [], ()), ("whisper", [AGENT], ("agent",)), ("barge", [AGENT, CUSTOMER], ("agent", "customer"))],
)
def test_by_default_whisper_tells_the_agent_barge_both_listen_nobody(mode: str, legs: list, notified: tuple) -> None:
    r = rig()
    effects = r.feed(park(mode, "1000", "1002"))
    assert [t.uuid for t in of(effects, MixTone)] == legs
    # the tone goes out before the eavesdrop starts (the supervisor's voice comes after it)
    if legs:
        order = [type(e) for e in effects]
        assert order.index(MixTone) < effects.index(next(e for e in effects if isinstance(e, Execute) and e.app == "eavesdrop"))
    started_effects = r.feed(execute("eavesdrop", SUP), bug())
    [first] = of(started_effects, AddMode)
    assert first.notified == notified  # recorded with the first mode, when audio flows


@pytest.mark.parametrize(
    ("key", "mode", "legs"),
    [("2", "whisper", [AGENT]), ("3", "barge", [AGENT, CUSTOMER]), ("1", "customer_whisper", [CUSTOMER]), ("0", "listen", [])],
)
def test_a_key_notifies_as_a_start_does(key: str, mode: str, legs: list) -> None:
    r = rig()
    started(r, "listen" if key != "0" else "whisper")
    effects = r.feed(dtmf(key))
    [entry] = of(effects, AddMode)
    assert (entry.mode, entry.source) == (mode, "dtmf")
    assert [t.uuid for t in of(effects, MixTone)] == legs
    assert entry.notified == tuple({AGENT: "agent", CUSTOMER: "customer"}[leg] for leg in legs)


def test_a_refused_key_plays_no_tone() -> None:
    r = Rig(allow_second_barge=False)
    r.machine.tones = Tones(ERROR_TONE, ENDED_TONE, NOTIFY)
    r.call()
    started(r, "whisper", supervisor="1002")
    r.machine.policy = Policy(dataclasses.replace(r.machine.policy.config, teams=(
        TeamConfig("sales", agents=("1000",), supervisors=("1002",), modes=("listen", "whisper")),)))
    effects = r.feed(dtmf("3"))
    assert of(effects, MixTone) == [] and of(effects, AddMode)[0].refused


def test_each_team_chooses_who_is_notified_and_when() -> None:
    r = rig(notify_agent=("listen",), notify_customer=())
    assert [t.uuid for t in of(r.feed(park("listen", "1000", "1002")), MixTone)] == [AGENT]
    r = rig(notify_agent=(), notify_customer=())
    assert of(r.feed(park("barge", "1000", "1002")), MixTone) == []


def test_no_notify_tone_configured_means_no_tone() -> None:
    r = Rig()  # Tones without notify
    r.call()
    assert of(r.feed(park("barge", "1000", "1002")), MixTone) == []


def test_a_second_tone_on_a_leg_within_the_limit_stops_the_first() -> None:
    """FreeSWITCH refuses a second displace of the same file on a channel while one runs."""
    r = rig()
    started(r, "whisper")
    effects = r.feed(dtmf("3"), dt=1.0)
    assert effects[-3:] == [StopTone(AGENT, NOTIFY), MixTone(AGENT, NOTIFY), MixTone(CUSTOMER, NOTIFY)]
    later = r.feed(dtmf("2"), dt=10.0)
    assert of(later, StopTone) == [] and of(later, MixTone) == [MixTone(AGENT, NOTIFY)]


def test_the_command_mixes_on_the_write_side_with_a_time_limit() -> None:
    assert to_command(MixTone("u-1", NOTIFY)) == mix_tone("u-1", NOTIFY) == f"bgapi uuid_displace u-1 start {NOTIFY} 5 m"
    assert to_command(StopTone("u-1", NOTIFY)) == stop_tone("u-1", NOTIFY) == f"api uuid_displace u-1 stop {NOTIFY}"
    with pytest.raises(ValueError):
        mix_tone("u-1", "tone_stream://%(100, 0, 1400)")


def write(tmp_path: Path, team_extra: str = "", tones: str = "") -> Path:
    path = tmp_path / "fsbarge.toml"
    path.write_text(f"""
[[freeswitch]]
name = "pbx1"
host = "127.0.0.1"
port = 8021
password = "x"
[database]
url = "sqlite:///{tmp_path / 'f.db'}"
[tones]
{tones}
[[teams]]
name = "sales"
agents = ["1000"]
supervisors = ["1002"]
{team_extra}
""")
    return path


def test_configuration_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(str(write(tmp_path)))
    assert (cfg.teams[0].notify_agent, cfg.teams[0].notify_customer) == (("whisper", "barge"), ("barge", "customer_whisper"))
    assert cfg.tones.notify.startswith("tone_stream://")
    cfg = load_config(str(write(tmp_path, 'notify_agent = []\nnotify_customer = ["barge"]', 'notify = "tone_stream://%(99,0,1900)"')))
    assert (cfg.teams[0].notify_agent, cfg.teams[0].notify_customer, cfg.tones.notify) == ((), ("barge",), "tone_stream://%(99,0,1900)")


@pytest.mark.parametrize(
    ("team_extra", "tones", "key", "problem"),
    [
        ('notify_agent = ["shout"]', "", "teams[0].notify_agent[0]", "unknown mode"),
        ('notify_customer = "barge"', "", "teams[0].notify_customer", "must be an array"),
        ("", 'notify = "tone_stream://%(100, 0, 1400)"', "tones.notify", "must not contain spaces"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path: Path, team_extra: str, tones: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(str(write(tmp_path, team_extra, tones)))
    assert key in str(err.value) and problem in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("since", "tone", "expected"),
    [
        (None, NOTIFY, [MixTone(AGENT, NOTIFY)]),  # first time: mixed in
        (2.0, NOTIFY, [StopTone(AGENT, NOTIFY), MixTone(AGENT, NOTIFY)]),  # still playing: stopped first
        (NOTIFY_LIMIT, NOTIFY, [MixTone(AGENT, NOTIFY)]),  # over by now
        (None, None, []),  # no tone configured
    ],
)
def test_the_notifier_stops_a_tone_still_playing_before_mixing_it_again(since: float | None, tone: str | None, expected: list) -> None:
    r = rig()
    notifier = Notifier({AGENT: 100.0 - since} if since is not None else {})
    iv = Intervention(SUP, "1002", "1000", AGENT, "whisper", 90.0)
    effects, notified = notifier.entering(iv, "whisper", 100.0, policy=r.machine.policy, channels=r.table, tone=tone)
    assert effects == expected
    assert notified == (("agent",) if expected else ())
