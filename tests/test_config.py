"""fsbarge.config: the TOML file -> frozen Config, and one clear line for every mistake."""

from __future__ import annotations

import dataclasses

import pytest

from fsbarge.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATABASE_URL,
    Config,
    JournalConfig,
    ConfigError,
    DatabaseConfig,
    NodeConfig,
    PolicyConfig,
    TeamConfig,
    TonesConfig,
    load_config,
    load_database_url,
    load_teams,
    parse_config,
    resolve_config_path,
)

PATH = "/etc/fsbarge/fsbarge.toml"
SECRET = "Cl0oz-Secret-Pw"
ENV_SECRET = "From-The-Env-42"

FULL = f"""
[[freeswitch]]
name = "pbx1"
host = "127.0.0.1"
port = 8021
password = "{SECRET}"

[[freeswitch]]
name = "pbx2"
host = "10.0.0.2"
port = 8022
password = "{SECRET}"
connect_timeout = 2
command_timeout = 7.5
idle_timeout = 65

[database]
url = "sqlite:////tmp/fsbarge.db"

[[teams]]
name = "sales"
agents = ["1000", "1004"]
supervisors = ["1002"]
modes = ["listen", "whisper", "barge"]

[[teams]]
name = "support"
agents = ["2000"]
supervisors = ["1002", "2002"]
modes = ["listen"]

[policy]
protect_supervisors = false
protected = ["1999"]
allow_second_barge = true

[tones]
error = "tone_stream://%(100,100,350)"
ended = "silence_stream://500"

[log]
level = "DEBUG"
"""

MINIMAL = f"""
[[freeswitch]]
name = "pbx1"
host = "127.0.0.1"
password = "{SECRET}"

[[teams]]
name = "sales"
agents = ["1000"]
supervisors = ["1002"]
"""


def variant(old: str, new: str, base: str = FULL) -> str:
    """``base`` with one edit; fails loudly if the edit would not apply (so no case passes by accident)."""
    assert base.count(old) >= 1, f"{old!r} not in the base config"
    return base.replace(old, new, 1)


def error_of(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, PATH, env or {})
    return info.value


# ------------------------------------------------------------------------------------------- valid


def test_full_config_parses_into_exactly_these_dataclasses():
    config = parse_config(FULL, PATH, {})
    assert config == Config(
        path=PATH,
        nodes=(
            NodeConfig(name="pbx1", host="127.0.0.1", port=8021, password=SECRET),
            NodeConfig(
                name="pbx2", host="10.0.0.2", port=8022, password=SECRET,
                connect_timeout=2.0, command_timeout=7.5, idle_timeout=65.0,
            ),
        ),
        database=DatabaseConfig(url="sqlite:////tmp/fsbarge.db"),
        teams=(
            TeamConfig(name="sales", agents=("1000", "1004"), supervisors=("1002",),
                       modes=("listen", "whisper", "barge")),
            TeamConfig(name="support", agents=("2000",), supervisors=("1002", "2002"), modes=("listen",)),
        ),
        policy=PolicyConfig(protect_supervisors=False, protected=("1999",), allow_second_barge=True),
        tones=TonesConfig(error="tone_stream://%(100,100,350)", ended="silence_stream://500"),
        log_level="debug",
        journal=JournalConfig(path="/tmp/fsbarge.journal"),  # beside the SQLite file by default
    )


def test_minimal_config_gets_the_documented_defaults():
    config = parse_config(MINIMAL, PATH, {})
    node = config.nodes[0]
    assert (node.port, node.connect_timeout, node.command_timeout, node.idle_timeout) == (8021, 5.0, 5.0, 30.0)
    assert config.database.url == DEFAULT_DATABASE_URL == "sqlite:////var/lib/fsbarge/fsbarge.db"
    assert config.teams[0].modes == ("listen", "whisper", "barge", "customer_whisper")  # default: every mode
    assert config.policy == PolicyConfig(protect_supervisors=True, protected=(), allow_second_barge=False)
    assert config.tones == TonesConfig()
    assert config.tones.error.startswith("tone_stream://")
    assert config.log_level == "info"
    assert config.journal.path == "/var/lib/fsbarge/fsbarge.journal"


def test_config_is_frozen():
    config = parse_config(MINIMAL, PATH, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.log_level = "debug"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.nodes[0].password = "x"  # type: ignore[misc]


def test_team_queries_answer_who_supervises_whom():
    config = parse_config(FULL, PATH, {})
    assert [t.name for t in config.teams_supervised_by("1002")] == ["sales", "support"]
    assert [t.name for t in config.teams_supervised_by("2002")] == ["support"]
    assert config.teams_supervised_by("1000") == ()
    assert config.is_supervisor("2002") and not config.is_supervisor("1000")
    assert not config.is_supervisor("9999")


def test_all_passwords_holds_every_esl_password_and_the_database_password():
    text = variant('url = "sqlite:////tmp/fsbarge.db"', 'url = "postgresql://fsbarge:DbPass-77@db/fsbarge"')
    assert parse_config(text, PATH, {}).all_passwords() == {SECRET, "DbPass-77"}
    assert parse_config(FULL, PATH, {}).all_passwords() == {SECRET}


def test_repr_never_shows_a_password():
    text = variant('url = "sqlite:////tmp/fsbarge.db"', 'url = "postgresql://fsbarge:DbPass-77@db/fsbarge"')
    config = parse_config(text, PATH, {"FSBARGE_ESL_PASSWORD": ENV_SECRET})
    for shown in (repr(config), str(config), repr(config.nodes[0]), repr(config.database)):
        assert ENV_SECRET not in shown and SECRET not in shown and "DbPass-77" not in shown
    assert "postgresql://fsbarge:***@db/fsbarge" in repr(config.database)
    assert config.database.url == "postgresql://fsbarge:DbPass-77@db/fsbarge"  # the value itself is intact


def test_log_level_names_are_case_insensitive_and_warn_means_warning():
    assert parse_config(MINIMAL + '[log]\nlevel = "Warn"\n', PATH, {}).log_level == "warning"


# ----------------------------------------------------------------------------- environment override


def test_env_password_overrides_every_node_password():
    config = parse_config(FULL, PATH, {"FSBARGE_ESL_PASSWORD": ENV_SECRET})
    assert [n.password for n in config.nodes] == [ENV_SECRET, ENV_SECRET]
    assert config.all_passwords() == {ENV_SECRET}


def test_env_password_lets_the_file_leave_password_out():
    text = FULL.replace(f'password = "{SECRET}"\n', "")
    assert "password" not in text
    config = parse_config(text, PATH, {"FSBARGE_ESL_PASSWORD": ENV_SECRET})
    assert {n.password for n in config.nodes} == {ENV_SECRET}


def test_empty_env_password_counts_as_unset():
    assert parse_config(FULL, PATH, {"FSBARGE_ESL_PASSWORD": ""}).nodes[0].password == SECRET
    text = FULL.replace(f'password = "{SECRET}"\n', "")
    assert "set password or FSBARGE_ESL_PASSWORD" in str(error_of(text, {"FSBARGE_ESL_PASSWORD": ""}))


def test_env_database_url_overrides_the_file():
    config = parse_config(FULL, PATH, {"FSBARGE_DATABASE_URL": "postgresql://u:DbPass-77@db/x"})
    assert config.database.url == "postgresql://u:DbPass-77@db/x"
    assert "DbPass-77" in config.all_passwords()


# -------------------------------------------------------------------------------------- file paths


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        ("/cli.toml", {"FSBARGE_CONFIG": "/env.toml"}, "/cli.toml"),
        (None, {"FSBARGE_CONFIG": "/env.toml"}, "/env.toml"),
        (None, {}, DEFAULT_CONFIG_PATH),
        (None, {"FSBARGE_CONFIG": ""}, DEFAULT_CONFIG_PATH),
        ("", {"FSBARGE_CONFIG": "/env.toml"}, "/env.toml"),
    ],
    ids=["cli-wins", "env-next", "default-last", "empty-env-is-unset", "empty-cli-is-unset"],
)
def test_config_path_resolution_order(cli, env, expected):
    assert resolve_config_path(cli, env) == expected
    assert DEFAULT_CONFIG_PATH == "/etc/fsbarge/fsbarge.toml"


def test_load_config_reads_the_file(tmp_path):
    path = tmp_path / "fsbarge.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())  # a BOM from a Windows editor is fine
    config = load_config(str(path), {})
    assert config.path == str(path)
    assert config.nodes[0].name == "pbx1"


def test_load_config_applies_the_env_override(tmp_path):
    path = tmp_path / "fsbarge.toml"
    path.write_text(MINIMAL)
    assert load_config(str(path), {"FSBARGE_ESL_PASSWORD": ENV_SECRET}).nodes[0].password == ENV_SECRET


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b'[log]\nlevel = "\xff"\n'), "line 2: not valid UTF-8"),
    ],
    ids=["missing", "directory", "not-utf8"],
)
def test_unreadable_file_is_one_line_naming_the_file(tmp_path, setup, fragment):
    path = tmp_path / "fsbarge.toml"
    setup(path)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "\n" not in message


# ----------------------------------------------------------------------------------------- invalid

PASSWORDLESS = FULL.replace(f'password = "{SECRET}"\n', "")

INVALID = [
    # (id, text, key, fragment of the problem)
    ("toml-syntax", variant("port = 8021", "port = 8021 8022"), "line 5, column 13", "invalid TOML: "),
    ("no-freeswitch", FULL.split("[database]")[1].join(["[database]", ""]), "freeswitch",
     "define at least one [[freeswitch]] node"),
    ("empty-freeswitch", "freeswitch = []\n" + MINIMAL.split("[[teams]]")[1].join(["[[teams]]", ""]),
     "freeswitch", "no nodes"),
    ("freeswitch-not-array", variant("[[freeswitch]]\nname = \"pbx1\"", "[freeswitch]\nname = \"pbx1\"",
                                     MINIMAL), "freeswitch", "write [[freeswitch]], not [freeswitch]"),
    ("duplicate-node", variant('name = "pbx2"', 'name = "pbx1"'), "freeswitch[1].name",
     'duplicate node name "pbx1" (also freeswitch[0])'),
    ("bad-node-name", variant('name = "pbx2"', 'name = "pbx 2"'), "freeswitch[1].name",
     "must be letters, digits"),
    ("missing-host", variant('host = "10.0.0.2"\n', ""), "freeswitch[1].host", "missing"),
    ("empty-host", variant('host = "10.0.0.2"', 'host = "  "'), "freeswitch[1].host", "must not be empty"),
    ("port-not-number", variant("port = 8022", 'port = "80x"'), "freeswitch[1].port",
     'must be an integer 1-65535, got "80x"'),
    ("port-out-of-range", variant("port = 8022", "port = 70000"), "freeswitch[1].port", "got 70000"),
    ("port-bool", variant("port = 8022", "port = true"), "freeswitch[1].port", "got true"),
    ("missing-password", PASSWORDLESS, "freeswitch[0].password",
     "missing: set password or FSBARGE_ESL_PASSWORD"),
    ("password-not-string", variant(f'password = "{SECRET}"', "password = 1234"),
     "freeswitch[0].password", "must be a string"),
    ("password-typo", variant("password =", "pasword ="), "freeswitch[0].pasword",
     'unknown key (did you mean "password"?)'),
    ("bad-timeout", variant("connect_timeout = 2", "connect_timeout = 0"), "freeswitch[1].connect_timeout",
     "must be a number of seconds greater than 0"),
    ("bad-idle-timeout", variant("idle_timeout = 65", 'idle_timeout = "1m"'), "freeswitch[1].idle_timeout",
     "must be a number of seconds greater than 0"),
    ("sip-address-port", variant("port = 8022", 'port = 8022\nsip_address = "10.0.0.2:99999"'),
     "freeswitch[1].sip_address", 'must be "host" or "host:port" (e.g. "10.0.0.12:5080"), got "10.0.0.2:99999"'),
    ("sip-address-uri", variant("port = 8022", 'port = 8022\nsip_address = "sip:pbx2@10.0.0.2"'),
     "freeswitch[1].sip_address", 'must be "host" or "host:port"'),
    ("sip-profile", variant("port = 8022", 'port = 8022\nsip_profile = "ex ternal"'),
     "freeswitch[1].sip_profile", "must be a sofia profile name"),
    ("unknown-top-level", "[logging]\nlevel = \"info\"\n" + FULL, "logging", "unknown key"),
    ("database-url-not-string", variant('url = "sqlite:////tmp/fsbarge.db"', "url = 5"), "database.url",
     "must be a string"),
    ("database-url-not-url", variant('url = "sqlite:////tmp/fsbarge.db"', 'url = "/tmp/fsbarge.db"'),
     "database.url", "must be an SQLAlchemy URL"),
    ("no-teams", FULL.split("[[teams]]")[0], "teams", "define at least one [[teams]]"),
    ("empty-team-name", variant('name = "support"', 'name = ""'), "teams[1].name", "must not be empty"),
    ("duplicate-team", variant('name = "support"', 'name = "sales"'), "teams[1].name",
     'duplicate team name "sales" (also teams[0])'),
    ("team-key-typo", variant('agents = ["2000"]', 'agent = ["2000"]'), "teams[1].agent",
     'unknown key (did you mean "agents"?)'),
    ("missing-agents", variant('agents = ["2000"]\n', ""), "teams[1].agents", "missing"),
    ("extension-as-int", variant('agents = ["1000", "1004"]', 'agents = ["1000", 1004]'),
     "teams[0].agents[1]", 'must be a string of digits like "1000", got 1004'),
    ("extension-not-digits", variant('supervisors = ["1002"]', 'supervisors = ["10o2"]'),
     "teams[0].supervisors[0]", 'must be a string of digits like "1000", got "10o2"'),
    ("extension-twice", variant('agents = ["1000", "1004"]', 'agents = ["1000", "1000"]'),
     "teams[0].agents[1]", '"1000" is listed twice'),
    ("unknown-mode", variant('modes = ["listen"]', 'modes = ["listen", "spy"]'), "teams[1].modes[1]",
     'unknown mode "spy"'),
    ("no-modes", variant('modes = ["listen"]', "modes = []"), "teams[1].modes", "at least one of"),
    ("agent-and-supervisor", variant('supervisors = ["1002"]', 'supervisors = ["1004"]'),
     "teams[0].supervisors[0]", '"1004" is also an agent of team "sales"'),
    ("policy-not-bool", variant("protect_supervisors = false", 'protect_supervisors = "no"'),
     "policy.protect_supervisors", 'must be true or false, got "no"'),
    ("policy-protected-ints", variant('protected = ["1999"]', "protected = [1999]"), "policy.protected[0]",
     "must be a string of digits"),
    ("tone-with-line-break", variant('ended = "silence_stream://500"', 'ended = "a\\nhangup"'),
     "tones.ended", "must not contain line breaks"),
    ("endless-error-tone", variant('error = "tone_stream://%(100,100,350)"', 'error = "tone_stream://%(500,500,480);loops=-1"'),
     "tones.error", "must end (it plays in full before the hang-up)"),
    ("endless-ended-tone", variant('ended = "silence_stream://500"', 'ended = "local_stream://moh"'),
     "tones.ended", "must end"),
    ("bad-log-level", variant('level = "DEBUG"', 'level = "loud"'), "log.level",
     'must be one of debug, info, warning, error, critical, got "loud"'),
    ("log-not-table", 'log = "debug"\n' + MINIMAL, "log", 'must be a table ([log]), got "debug"'),
]


@pytest.mark.parametrize(("text", "key", "fragment"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_config_is_one_line_naming_file_key_and_problem(text, key, fragment):
    error = error_of(text)
    message = str(error)
    assert error.key == key
    assert message.startswith(f"{PATH}: {key}: "), message
    assert fragment in message, message
    assert "\n" not in message
    assert SECRET not in message


def test_the_documented_example_error_is_word_for_word():
    text = variant("port = 8022", 'port = "80x"')
    assert str(error_of(text)) == f'{PATH}: freeswitch[1].port: must be an integer 1-65535, got "80x"'


def test_error_carries_path_key_and_problem_as_attributes():
    error = error_of(variant("port = 8022", "port = 0"))
    assert (error.path, error.key) == (PATH, "freeswitch[1].port")
    assert error.problem == "must be an integer 1-65535, got 0"


def test_a_password_typed_into_another_key_is_not_echoed():
    error = error_of(variant("port = 8022", f'port = "{SECRET}"'))
    assert SECRET not in str(error)
    assert str(error) == f'{PATH}: freeswitch[1].port: must be an integer 1-65535, got "***"'


def test_the_env_password_is_not_echoed_either():
    text = variant('name = "pbx2"', f'name = "{ENV_SECRET}!"', PASSWORDLESS)
    error = error_of(text, {"FSBARGE_ESL_PASSWORD": ENV_SECRET})
    assert error.key == "freeswitch[1].name"
    assert ENV_SECRET not in str(error)


def test_a_password_with_a_line_break_is_refused_without_showing_it():
    error = error_of(variant(f'password = "{SECRET}"', f'password = "{SECRET}\\nevent plain ALL"'))
    assert error.key == "freeswitch[0].password"
    assert "line breaks" in str(error) and SECRET not in str(error)


@pytest.mark.parametrize("address", ["10.0.0.2:5080", "10.0.0.2", "pbx2.example.com:5080", "[2001:db8::2]:5080"])
def test_a_node_may_give_the_sip_address_other_nodes_reach_it_at(address):
    config = parse_config(variant("port = 8022", f'port = 8022\nsip_address = "{address}"\nsip_profile = "wan"'), PATH, {})
    assert (config.nodes[1].sip_address, config.nodes[1].sip_profile) == (address, "wan")
    assert (config.nodes[0].sip_address, config.nodes[0].sip_profile) == (None, "external")


# ------------------------------------------------------------------------- valid, but probably wrong

SOUND = variant('protected = ["1999"]', 'protected = ["2000"]', FULL)  # FULL protects nobody's extension


@pytest.mark.parametrize(
    "edit, key, says",
    [
        (('supervisors = ["1002"]', "supervisors = []", MINIMAL), "teams[0].supervisors", "has no supervisors: nobody may listen"),
        (('agents = ["1000"]', "agents = []", MINIMAL), "teams[0].agents", "has no agents"),
        (('modes = ["listen"]', 'modes = ["listen"]\nnotify_agent = ["barge"]', SOUND), "teams[1].notify_agent[0]",
         '"barge" is not one of this team\'s modes: its tone never plays'),
        (('modes = ["listen"]', 'modes = ["listen"]\nnotify_customer = ["listen", "customer_whisper"]', SOUND),
         "teams[1].notify_customer[1]", '"customer_whisper" is not one of'),
        (('protected = ["1999"]', 'protected = ["1999"]', FULL), "policy.protected[0]",
         '"1999" is not an agent of any team: protecting it changes nothing'),
        (("[log]", '[metrics]\nlisten = "0.0.0.0:9464"\n[log]', SOUND), "metrics.listen",
         "0.0.0.0 is not a loopback address: anyone who can reach port 9464 reads the metrics"),
    ],
    ids=["no supervisors", "no agents", "notify_agent", "notify_customer", "protected nobody", "metrics on every address"],
)
def test_a_likely_mistake_is_one_warning_line_naming_file_and_key(edit, key, says):
    """Valid, so the daemon starts (a site upgrading fsbarge keeps running), but said once, in the
    error's format: `check-config` prints these lines and `run` logs them."""
    config = parse_config(variant(*edit), PATH, {})
    [warning] = config.warnings
    assert warning.startswith(f"{PATH}: {key}: ") and says in warning, warning


@pytest.mark.parametrize("listen", ["127.0.0.1:9464", "127.0.0.2:9464", "[::1]:9464", "localhost:9464"])
def test_a_sound_configuration_has_no_warnings(listen):
    """Loopback metrics, default notify lists on a team that allows fewer modes (the defaults fit
    every team), a protected agent."""
    text = SOUND + f'[metrics]\nlisten = "{listen}"\n'
    assert parse_config(text, PATH, {}).warnings == ()
    assert parse_config(MINIMAL, PATH, {}).warnings == ()


def test_read_commands_load_only_the_database_url_and_the_teams(tmp_path):
    """A file whose nodes are wrong (no password: it is in the daemon's environment file) still
    gives the read commands their database URL and teams; nothing else is validated for them."""
    path = tmp_path / "fsbarge.toml"
    path.write_text(FULL.replace(f'password = "{SECRET}"\n', "").replace("port = 8022", "port = 0"))
    assert load_database_url(str(path), {}) == "sqlite:////tmp/fsbarge.db"
    assert load_database_url(str(path), {"FSBARGE_DATABASE_URL": "postgresql://db/x"}) == "postgresql://db/x"
    assert [t.name for t in load_teams(str(path), {})] == ["sales", "support"]
    with pytest.raises(ConfigError, match="freeswitch"):
        load_config(str(path), {})
    path.write_text('[database]\nurl = "nonsense"\n')
    with pytest.raises(ConfigError, match=r"database\.url: must be an SQLAlchemy URL"):
        load_database_url(str(path), {})


def test_importing_the_configuration_stays_cheap():
    """Read commands load the configuration and must start in under 150 ms: importing it brings
    no third-party module (a schema library, SQLAlchemy), nor what only a mistake needs."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import fsbarge.config\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(m for m in new if (m not in sys.stdlib_module_names and m != 'fsbarge') or m in ('difflib', 'ipaddress')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
