"""The FreeSWITCH drop-in files (freeswitch-conf/) and the systemd files (systemd/).

The dialplan is checked by simulating how mod_dialplan_xml hunts the ``default`` context: every
``destination_number`` expression is compiled with Python's ``re`` in ASCII mode, which for these
patterns (anchors, literals, ``[0-9]``/``\\d``, groups) behaves like FreeSWITCH's PCRE, searched (not
full-matched, as FreeSWITCH does) against the dialled string, and ``$N`` in the action data is replaced
by the capture groups. What the simulation yields (mode and target) is compared with a table of dialled
strings and with an independent, regex-free definition of a feature code.

Several tests run the same checkers on deliberately broken inputs, so that a checker which could never
fail would itself fail.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "freeswitch-conf"
SYSTEMD = ROOT / "systemd"
DIALPLAN = CONF / "dialplan" / "default" / "01_fsbarge.xml"
EVENT_SOCKET = CONF / "autoload_configs" / "event_socket.conf.xml"
ACL_CONF = CONF / "autoload_configs" / "acl.conf.xml"  # optional: only if we ship our own ACL
DIRECTORY = CONF / "directory" / "default"
README = CONF / "README.md"
UNIT = SYSTEMD / "fsbarge.service"
ENV_EXAMPLE = SYSTEMD / "fsbarge.env.example"
TOML_EXAMPLE = SYSTEMD / "fsbarge.toml.example"

PLACEHOLDER = "CHANGE_ME"
CODE_MODES = {"33": "listen", "34": "whisper", "35": "barge"}
VARS_READ_BY_DAEMON = ("fsbarge_mode", "fsbarge_target")


# ============================================================================== dialplan simulation


@dataclass(frozen=True)
class Extension:
    name: str
    expression: str
    actions: tuple[tuple[str, str], ...]  # (application, data)
    attrs: dict[str, str]
    condition_attrs: dict[str, str]
    anti_actions: int


def load_extensions(path: Path) -> list[Extension]:
    root = ET.parse(path).getroot()
    assert root.tag == "include", f"{path}: a dialplan/default/*.xml file must be an <include>"
    extensions = []
    for ext in root:
        assert ext.tag == "extension", f"{path}: unexpected <{ext.tag}> (only <extension> elements)"
        conditions = ext.findall("condition")
        assert len(conditions) == 1, f"{path}: extension {ext.get('name')!r} needs exactly one condition"
        cond = conditions[0]
        assert cond.get("field") == "destination_number", f"{ext.get('name')}: must test destination_number"
        expression = cond.get("expression")
        assert expression, f"{ext.get('name')}: the condition has no expression attribute"
        actions = tuple((a.get("application", ""), a.get("data", "")) for a in cond.findall("action"))
        extensions.append(
            Extension(
                name=ext.get("name", ""),
                expression=expression,
                actions=actions,
                attrs=dict(ext.attrib),
                condition_attrs={k: v for k, v in cond.attrib.items() if k not in ("field", "expression")},
                anti_actions=len(cond.findall("anti-action")),
            )
        )
    return extensions


def pcre_like(expression: str) -> re.Pattern[str]:
    """PCRE as FreeSWITCH compiles it (no UTF/UCP): ``\\d`` and friends are ASCII-only."""
    return re.compile(expression, re.ASCII)


def substitute(data: str, m: re.Match[str]) -> str:
    """FreeSWITCH's ``$1``..``$9`` substitution in action data (an unset group gives "")."""

    def group(g: re.Match[str]) -> str:
        n = int(g.group(1))
        if n > (m.re.groups or 0):
            return ""
        return m.group(n) or ""

    return re.sub(r"\$(\d)", group, data)


def dial(dialled: str, extensions: list[Extension]) -> tuple[str, str] | None:
    """What the daemon would see on CHANNEL_PARK: (fsbarge_mode, fsbarge_target), or None if no
    extension of ours takes the call. Fails if more than one does (the codes must not overlap)."""
    hits = []
    for ext in extensions:
        m = pcre_like(ext.expression).search(dialled)
        if not m:
            continue
        variables: dict[str, str] = {}
        for app, data in ext.actions:
            if app == "set":
                name, _, value = substitute(data, m).partition("=")
                variables[name] = value
        hits.append((ext.name, variables))
    assert len(hits) <= 1, f"{dialled!r} matches several extensions: {[h[0] for h in hits]}"
    if not hits:
        return None
    variables = hits[0][1]
    return variables.get("fsbarge_mode"), variables.get("fsbarge_target")


def spec_feature_code(dialled: str) -> tuple[str, str] | None:
    """The feature codes as the SPEC defines them, without any regex: ``*33``/``*34``/``*35`` followed by
    one or more ASCII digits and nothing else."""
    if len(dialled) < 4 or dialled[0] != "*" or dialled[1:3] not in CODE_MODES:
        return None
    target = dialled[3:]
    if not all(c in "0123456789" for c in target):
        return None
    return CODE_MODES[dialled[1:3]], target


MUST_MATCH = [
    ("*331000", "listen", "1000"),
    ("*341000", "whisper", "1000"),
    ("*351000", "barge", "1000"),
    ("*331004", "listen", "1004"),
    ("*341004", "whisper", "1004"),
    ("*351004", "barge", "1004"),
    ("*330", "listen", "0"),
    ("*3407", "whisper", "07"),  # leading zeros are part of the extension
    ("*3533", "barge", "33"),
    ("*33331000", "listen", "331000"),
    ("*3312345678901234", "listen", "12345678901234"),
]

MUST_NOT_MATCH = [
    "",
    "*",
    "*3",
    "*33",
    "*34",
    "*35",
    "*36",
    "*361000",
    "*36 1000",
    "*321000",
    "*371000",
    "*301000",
    "*3 31000",
    "*331000#",
    "#*331000",
    "*33#1000",
    "*33abc",
    "*33100a",
    "*3a1000",
    "*3310 00",
    "*33 1000",
    " *331000",
    "*331000 ",
    "*33\t1000",
    "**331000",
    "*3*31000",
    "x*331000",
    "331000",
    "3331000",
    "*+331000",
    "*33+1000",
    "*33-1000",
    "*331000*",
    "*33\u0661\u0660\u0660\u0660",  # Arabic-Indic digits: not dialable digits
    "*33\uff11\uff10\uff10\uff10",  # full-width digits
    "*34 ",
    "*35*",
    "1000",
]

# destination_number expressions of the stock conf/vanilla/dialplan/default.xml extensions that come
# BEFORE its <X-PRE-PROCESS cmd="include" data="default/*.xml"/> and could see a string starting with
# "*" (anchored on "*", or unanchored). The first of them to match would win over our file.
STOCK_PATTERNS_BEFORE_INCLUDE = [
    r"^\*8$",  # group-intercept
    r"^\*\*(\d+)$",  # intercept-ext
    r"^88(\d{4})$|^\*0(.*)$",  # eavesdrop
    r"^\*69$|^869$|^lcr$",  # call_return
    r"^vmain$|^4000$|^\*98$",  # vmain
    r"^sip:(.*)$",  # sip_uri
    r"park\+(\d+)",  # snom park
    r"callpark",  # linksys park
    r"pickup",  # linksys unpark
]


@pytest.fixture(scope="module")
def extensions() -> list[Extension]:
    return load_extensions(DIALPLAN)


@pytest.fixture(scope="module")
def feature_extensions(extensions: list[Extension]) -> list[Extension]:
    return [e for e in extensions if any(d.startswith("fsbarge_mode=") for _, d in e.actions)]


# ================================================================================= XML well-formedness


def all_xml_files() -> list[Path]:
    return sorted(CONF.rglob("*.xml"))


def test_the_expected_files_exist() -> None:
    for path in (DIALPLAN, EVENT_SOCKET, README, UNIT, ENV_EXAMPLE, TOML_EXAMPLE):
        assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    assert DIALPLAN.parent.name == "default" and re.fullmatch(r"\d\d_fsbarge\.xml", DIALPLAN.name)
    assert len(all_xml_files()) >= 5


@pytest.mark.parametrize("path", all_xml_files(), ids=lambda p: str(p.relative_to(CONF)))
def test_every_xml_file_parses_and_is_freeswitch_safe(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    root = ET.fromstring(text)  # well-formed (this also rejects "--" inside comments)
    assert root.tag in ("include", "configuration"), f"unexpected root <{root.tag}>"
    # FreeSWITCH's pre-processor expands $${...} and runs X-PRE-PROCESS even inside comments:
    # only a value the stock files also take from vars.xml (outbound caller ID) may use one.
    outside_values = re.sub(r'value="\$\$\{outbound_caller_(?:name|id)\}"', "", text)
    assert "$${" not in outside_values, "no $${...} pre-processor variables (they expand even in comments)"
    assert "X-PRE-PROCESS" not in text
    assert text.isascii(), "keep the drop-in files ASCII"


# ============================================================================================ dialplan


def test_the_dialplan_file_holds_bare_extensions(extensions: list[Extension]) -> None:
    # included inside <context name="default"> by the stock default.xml: no context of its own
    assert extensions, "no extensions"
    assert ET.parse(DIALPLAN).getroot().find(".//context") is None


def test_there_is_one_feature_code_extension_per_mode(feature_extensions: list[Extension]) -> None:
    modes = sorted(
        d.partition("=")[2] for e in feature_extensions for a, d in e.actions if d.startswith("fsbarge_mode=")
    )
    assert modes == sorted(CODE_MODES.values())
    assert len({e.name for e in feature_extensions}) == len(feature_extensions), "extension names repeat"


@pytest.mark.parametrize(("dialled", "mode", "target"), MUST_MATCH)
def test_feature_codes_that_must_match(
    extensions: list[Extension], dialled: str, mode: str, target: str
) -> None:
    assert dial(dialled, extensions) == (mode, target)


@pytest.mark.parametrize("dialled", MUST_NOT_MATCH, ids=repr)
def test_strings_that_must_not_match(extensions: list[Extension], dialled: str) -> None:
    assert dial(dialled, extensions) is None


# The alphabet a phone can send, plus letters and separators; no "\n" (PCRE's and Python's "$" both
# accept a single trailing newline, which a SIP destination cannot end with anyway).
_DIAL_ALPHABET = "*#0123456789 +-abAB3345"


@given(st.text(alphabet=_DIAL_ALPHABET, max_size=10))
def test_dialplan_agrees_with_the_spec_for_any_string(dialled: str) -> None:
    extensions = load_extensions(DIALPLAN)
    assert dial(dialled, extensions) == spec_feature_code(dialled)


@given(st.sampled_from(sorted(CODE_MODES)), st.text(alphabet="0123456789", min_size=1, max_size=12))
def test_every_code_followed_by_digits_matches(code: str, target: str) -> None:
    extensions = load_extensions(DIALPLAN)
    assert dial(f"*{code}{target}", extensions) == (CODE_MODES[code], target)


def test_each_feature_extension_answers_sets_the_variables_and_parks(
    feature_extensions: list[Extension],
) -> None:
    for code, mode in CODE_MODES.items():
        dialled = f"*{code}1000"
        [ext] = [e for e in feature_extensions if pcre_like(e.expression).search(dialled)]
        apps = [app for app, _ in ext.actions]
        assert apps == ["answer", "set", "set", "park"], f"{ext.name}: {ext.actions}"
        assert ext.actions[1] == ("set", f"fsbarge_mode={mode}"), f"{ext.name}: code *{code} is {mode}"
        name, _, value = ext.actions[2][1].partition("=")
        assert name == "fsbarge_target" and re.fullmatch(r"\$\d", value), ext.actions[2]
        assert ext.actions[0][1] == "" and ext.actions[3][1] == "", "answer/park take no data"


def test_feature_extensions_stop_the_hunt_and_leave_eavesdrop_to_the_daemon(
    feature_extensions: list[Extension],
) -> None:
    for ext in feature_extensions:
        # continue="true" would go on hunting (into the stock catch-all "enum" transfer);
        # break=/inline= and anti-actions would change when the actions run.
        assert set(ext.attrs) == {"name"}, f"{ext.name}: unexpected attributes {ext.attrs}"
        assert ext.condition_attrs == {}, f"{ext.name}: unexpected condition attributes"
        assert ext.anti_actions == 0
        for app, data in ext.actions:
            assert "eavesdrop" not in app and "eavesdrop" not in data, f"{ext.name}: {app} {data}"
            if app == "set":
                assert data.partition("=")[0] in VARS_READ_BY_DAEMON


def test_expressions_are_anchored(feature_extensions: list[Extension]) -> None:
    for ext in feature_extensions:
        assert ext.expression.startswith("^") and ext.expression.endswith("$"), ext.expression


def test_no_stock_extension_before_the_include_takes_our_codes() -> None:
    for dialled, _, _ in MUST_MATCH:
        for pattern in STOCK_PATTERNS_BEFORE_INCLUDE:
            assert not pcre_like(pattern).search(dialled), f"stock {pattern!r} would take {dialled!r}"


def test_every_agent_of_the_example_team_can_be_dialled(extensions: list[Extension]) -> None:
    doc = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    agents = [a for team in doc["teams"] for a in team["agents"]]
    assert agents
    for agent in agents:
        for code, mode in CODE_MODES.items():
            assert dial(f"*{code}{agent}", extensions) == (mode, agent)


def test_the_simulation_itself_catches_a_loose_dialplan(tmp_path: Path) -> None:
    loose = tmp_path / "loose.xml"
    loose.write_text(
        "<include>"
        '<extension name="any"><condition field="destination_number" expression="^\\*3(\\d)(\\d*)">'
        '<action application="answer"/><action application="set" data="fsbarge_mode=listen"/>'
        '<action application="set" data="fsbarge_target=$2"/><action application="park"/>'
        "</condition></extension></include>"
    )
    exts = load_extensions(loose)
    caught = [s for s in MUST_NOT_MATCH if dial(s, exts) is not None]
    assert {"*361000", "*331000#", "*3310 00", "*33"} <= set(caught)
    # and a wrong mode for the code is noticed by the spec comparison
    assert dial("*351000", exts) != spec_feature_code("*351000")


def test_overlapping_extensions_are_reported(tmp_path: Path) -> None:
    doubled = tmp_path / "doubled.xml"
    ext = (
        '<extension name="{n}"><condition field="destination_number" expression="^\\*33([0-9]+)$">'
        '<action application="set" data="fsbarge_mode=listen"/></condition></extension>'
    )
    doubled.write_text("<include>" + ext.format(n="a") + ext.format(n="b") + "</include>")
    with pytest.raises(AssertionError, match="several extensions"):
        dial("*331000", load_extensions(doubled))


# ====================================================================================== event socket


def settings(path: Path) -> dict[str, str]:
    root = ET.parse(path).getroot()
    assert root.tag == "configuration" and root.get("name") == "event_socket.conf"
    params = root.findall("./settings/param")
    names = [p.get("name") for p in params]
    assert len(names) == len(set(names)), f"duplicate params: {names}"
    return {p.get("name", ""): p.get("value", "") for p in params}


def loopback_only_acl(name: str) -> bool:
    """True if ``name`` is FreeSWITCH's built-in loopback list, or an ACL we ship that denies by
    default and allows loopback addresses only."""
    if name == "loopback.auto":
        return True
    if not ACL_CONF.is_file():
        return False
    for lst in ET.parse(ACL_CONF).getroot().iter("list"):
        if lst.get("name") != name:
            continue
        if lst.get("default") != "deny":
            return False
        nodes = lst.findall("node")
        return bool(nodes) and all(
            n.get("type") == "deny"
            or (n.get("cidr") and ipaddress.ip_network(n.get("cidr", ""), strict=False).is_loopback)
            for n in nodes
        )
    return False


def test_event_socket_listens_on_loopback_only() -> None:
    s = settings(EVENT_SOCKET)
    assert s["listen-ip"] == "127.0.0.1"
    assert s["listen-port"] == "8021"
    assert s["nat-map"] == "false"


def test_event_socket_password_is_the_placeholder() -> None:
    assert settings(EVENT_SOCKET)["password"] == PLACEHOLDER


def test_event_socket_applies_a_loopback_acl() -> None:
    acl = settings(EVENT_SOCKET).get("apply-inbound-acl", "")
    assert acl, "apply-inbound-acl is missing"
    assert loopback_only_acl(acl), f"{acl!r} is not a loopback-only ACL"


def test_the_acl_check_can_fail() -> None:
    assert not loopback_only_acl("lan")
    assert not loopback_only_acl("rfc1918.auto")
    assert not loopback_only_acl("")


def test_event_socket_matches_the_example_daemon_config() -> None:
    s = settings(EVENT_SOCKET)
    doc = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    [node] = doc["freeswitch"]
    assert (node["host"], str(node["port"])) == (s["listen-ip"], s["listen-port"])


# ========================================================================================= directory


def directory_files() -> list[Path]:
    return sorted(DIRECTORY.glob("*.xml"))


def load_user(path: Path) -> tuple[ET.Element, dict[str, str], dict[str, str]]:
    root = ET.parse(path).getroot()
    assert root.tag == "include"
    users = root.findall("user")
    assert len(users) == 1, f"{path.name}: one <user> per file"
    user = users[0]
    params = {p.get("name", ""): p.get("value", "") for p in user.findall("./params/param")}
    variables = {v.get("name", ""): v.get("value", "") for v in user.findall("./variables/variable")}
    return user, params, variables


def stock_user(ext: str) -> tuple[dict[str, str], dict[str, str]]:
    """(params, variables) of FreeSWITCH's stock directory/default/<ext>.xml (1000-1019 are alike)."""
    params = {"password": "$${default_password}", "vm-password": ext}
    variables = {
        "toll_allow": "domestic,international,local", "accountcode": ext, "user_context": "default",
        "effective_caller_id_name": f"Extension {ext}", "effective_caller_id_number": ext,
        "outbound_caller_id_name": "$${outbound_caller_name}", "outbound_caller_id_number": "$${outbound_caller_id}",
        "callgroup": "techsupport",
    }
    return params, variables


SECRETS_OF_ITS_OWN = {"password": PLACEHOLDER, "vm-password": PLACEHOLDER}


@pytest.mark.parametrize("path", directory_files(), ids=lambda p: p.name)
def test_directory_user_is_the_stock_user_with_secrets_of_its_own(path: Path) -> None:
    """An example user replaces the stock file of the same name: it keeps every stock parameter and
    variable (voicemail PIN, toll_allow, outbound caller ID, the *8 callgroup...), only its
    password and voicemail PIN are placeholders instead of the shared defaults. fsbarge needs
    nothing beyond that: digest authentication (a password, no cidr=)."""
    user, params, variables = load_user(path)
    assert user.get("id") == path.stem, "the file is named after the user (it replaces the stock one)"
    assert user.get("cidr") is None, "no IP authentication: fsbarge needs digest-authenticated callers"
    assert user.get("type") is None
    stock_params, stock_variables = stock_user(path.stem)
    assert params == {**stock_params, **SECRETS_OF_ITS_OWN}
    assert variables == stock_variables


def _installed_stock_directory() -> Path | None:
    conf = os.environ.get("FSBARGE_FREESWITCH_CONF") or "/usr/local/freeswitch/conf"
    directory = Path(conf) / "directory" / "default"
    return directory if (directory / "1000.xml").is_file() else None


@pytest.mark.skipif(_installed_stock_directory() is None, reason="no stock FreeSWITCH configuration on this machine")
@pytest.mark.parametrize("path", directory_files(), ids=lambda p: p.name)
def test_directory_user_matches_the_installed_stock_file(path: Path) -> None:
    """The table above, held to the stock file of the FreeSWITCH installed here."""
    stock = _installed_stock_directory() / path.name  # type: ignore[operator]
    _, params, variables = load_user(stock)
    assert (params, variables) == stock_user(path.stem)


def test_the_example_team_has_directory_users_and_comments_say_who_is_who() -> None:
    doc = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    users = {p.stem: p for p in directory_files()}
    for team in doc["teams"]:
        for role, exts in (("agent", team["agents"]), ("supervisor", team["supervisors"])):
            for ext in exts:
                assert ext in users, f"{role} {ext} of team {team['name']} has no directory/default/{ext}.xml"
                assert role in users[ext].read_text(encoding="utf-8").lower()


# ============================================================================================ README


def test_readme_documents_installation_and_the_hand_off() -> None:
    text = README.read_text(encoding="utf-8")
    for needle in (
        "/etc/freeswitch",
        "/usr/local/freeswitch/conf",
        "reloadxml",
        "reload mod_event_socket",
        "fs_cli -x",
        "variable_fsbarge_mode",
        "variable_fsbarge_target",
        "user_name",
        "apply-inbound-acl",
        "unauthenticated",
        "FSBARGE_ESL_PASSWORD",
        "EnvironmentFile",
        "/etc/fsbarge/fsbarge.env",
    ):
        assert needle in text, f"README.md does not mention {needle}"
    for rel in ("dialplan/default/01_fsbarge.xml", "autoload_configs/event_socket.conf.xml", "directory/default/"):
        assert rel in text


def test_readme_documents_the_dtmf_keys() -> None:
    text = README.read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\|\s*`([0-9*])`\s*\|\s*([^|]+?)\s*\|", text, re.M)}
    assert rows.get("0", "").startswith("listen")
    assert "customer" in rows.get("1", "")
    assert rows.get("2", "").startswith("whisper")
    assert rows.get("3", "").startswith("barge")
    assert set(rows.get("*", "")) <= set("—- ") or "leave" in text


# ============================================================================================ systemd


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file: section -> [(key, value)] in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def single(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= appears {len(found)} times"
    return found[0]


def words(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> set[str]:
    return {w for v in values(unit, section, key) for w in v.split()}


_SPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def timespan(value: str) -> float:
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", value)
    assert parts and "".join(f"{n}{u}" for n, u in parts) == value.replace(" ", ""), value
    return sum(float(n) * _SPAN_UNITS[u] for n, u in parts)


def exec_argv(value: str) -> list[str]:
    argv = shlex.split(value)
    argv[0] = argv[0].lstrip("-@:+!")
    return argv


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_unit_is_a_notify_service_with_a_watchdog(unit) -> None:
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "NotifyAccess") == "main"
    assert 0 < timespan(single(unit, "Service", "WatchdogSec")) <= 300


def test_unit_restarts_on_failure(unit) -> None:
    assert single(unit, "Service", "Restart") == "on-failure"
    assert 0 < timespan(single(unit, "Service", "RestartSec")) <= 30


def test_unit_runs_the_daemon_with_the_config(unit) -> None:
    argv = exec_argv(single(unit, "Service", "ExecStart"))
    assert argv[0] == "/opt/fsbarge/.venv/bin/fsbarge"
    assert argv[1:] == ["run", "--config", "/etc/fsbarge/fsbarge.toml"]
    # every command comes from the same virtualenv
    for key in ("ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop"):
        for value in values(unit, "Service", key):
            assert exec_argv(value)[0] == argv[0], f"{key}={value}"


def test_unit_is_ordered_after_freeswitch_but_does_not_pull_it_in(unit) -> None:
    assert "freeswitch.service" in words(unit, "Unit", "After")
    for key in ("Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "Conflicts"):
        assert "freeswitch.service" not in words(unit, "Unit", key), f"{key}=freeswitch.service"
    if "network-online.target" in words(unit, "Unit", "After"):
        assert "network-online.target" in words(unit, "Unit", "Wants")


def test_unit_state_directory_holds_the_example_database(unit) -> None:
    state = single(unit, "Service", "StateDirectory")
    assert state == "fsbarge"
    url = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))["database"]["url"]
    assert url == "sqlite:////var/lib/fsbarge/fsbarge.db"
    assert url.removeprefix("sqlite:///").startswith(f"/var/lib/{state}/")


def test_unit_reads_the_environment_file(unit) -> None:
    assert "-/etc/fsbarge/fsbarge.env" in values(unit, "Service", "EnvironmentFile")


def test_unit_is_hardened(unit) -> None:
    svc = dict(unit["Service"])
    assert svc.get("DynamicUser") == "yes" or svc.get("User", "root") not in ("root", "0")
    assert svc.get("NoNewPrivileges") == "yes"
    assert svc.get("ProtectSystem") == "strict"
    assert svc.get("ProtectHome") in ("yes", "read-only", "tmpfs")
    assert svc.get("PrivateTmp") == "yes"
    assert svc.get("PrivateDevices") == "yes"
    for key in ("ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "RestrictSUIDSGID"):
        assert svc.get(key) == "yes", key
    families = words(unit, "Service", "RestrictAddressFamilies")
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= families  # AF_UNIX: sd_notify
    assert families <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert "@system-service" in words(unit, "Service", "SystemCallFilter")
    assert single(unit, "Service", "CapabilityBoundingSet") == ""


def test_unit_lets_the_fsbarge_group_read_the_state_directory_and_nobody_else(unit) -> None:
    """QA access without root: a static user and group, directory 0750, files 0640 (group read only)."""
    assert single(unit, "Service", "User") == single(unit, "Service", "Group") == "fsbarge"
    assert dict(unit["Service"]).get("DynamicUser", "no") == "no"  # its state would be under /var/lib/private (0700)
    directory = int(single(unit, "Service", "StateDirectoryMode"), 8)
    umask = int(single(unit, "Service", "UMask"), 8)
    assert directory == 0o750
    assert 0o666 & ~umask == 0o640  # a new database, -wal, -shm or journal file
    sysusers = (UNIT.parent / "fsbarge.sysusers").read_text(encoding="utf-8")
    entries = [line.split() for line in sysusers.splitlines() if line.strip() and not line.startswith("#")]
    assert entries[0][:3] == ["u", "fsbarge", "-"]


def test_unit_is_installed_for_boot(unit) -> None:
    assert "multi-user.target" in words(unit, "Install", "WantedBy")


def test_unit_parser_can_fail() -> None:
    bad = parse_unit("[Unit]\nWants=freeswitch.service\nAfter=x.service\n[Service]\nType=simple\n")
    assert "freeswitch.service" in words(bad, "Unit", "Wants")
    assert "freeswitch.service" not in words(bad, "Unit", "After")
    assert single(bad, "Service", "Type") != "notify"
    assert timespan("1min 30s") == 90
    with pytest.raises(AssertionError):
        single(parse_unit("[Service]\nType=notify\nType=simple\n"), "Service", "Type")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # The virtualenv does not exist here: point the commands at an executable that does.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/fsbarge/.venv/bin/fsbarge", "/bin/true")
    copy = tmp_path / "fsbarge.service"
    copy.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 and re.search(r"(?i)failed to (initialize|connect|create)|bus|/run/", output):
        pytest.skip(f"systemd-analyze cannot run here: {output[:200]}")
    assert proc.returncode == 0 and "fsbarge.service:" not in output, output


def test_env_example_sets_the_esl_password_placeholder() -> None:
    assignments = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"not KEY=VALUE: {line}"
            assignments[key] = value
    assert assignments.get("FSBARGE_ESL_PASSWORD") == PLACEHOLDER


def test_toml_example_has_the_spec_shape() -> None:
    doc = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    [node] = doc["freeswitch"]
    assert node["name"] and node["host"] == "127.0.0.1" and node["port"] == 8021
    assert node.get("password", PLACEHOLDER) == PLACEHOLDER
    assert doc["database"]["url"] == "sqlite:////var/lib/fsbarge/fsbarge.db"
    [team] = doc["teams"]
    assert team["name"] == "sales"
    assert team["agents"] == ["1000", "1004"]
    assert team["supervisors"] == ["1002"]
    assert set(team.get("modes", CODE_MODES.values())) <= set(CODE_MODES.values())


def test_toml_example_is_accepted_by_the_daemon_config_loader() -> None:
    config_module = pytest.importorskip("fsbarge.config")
    secret = "test-only-esl-secret"
    config = config_module.load_config(str(TOML_EXAMPLE), {"FSBARGE_ESL_PASSWORD": secret})
    assert [n.password for n in config.nodes] == [secret]
    assert [(t.name, t.agents, t.supervisors) for t in config.teams] == [("sales", ("1000", "1004"), ("1002",))]
    assert config.warnings == ()


# ============================================================================================ secrets


_SECRET_KEY = r"[A-Za-z0-9_.-]*(?:password|passwd|secret|token|a1-hash)[A-Za-z0-9_.-]*"
_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9_.`-])({_SECRET_KEY})\s*(?:=>|=)\s*(\"[^\"]*\"|'[^']*'|\S+)")
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:([^@\s/]+)@")
_ESL_AUTH = re.compile(r"(?im)^\s*auth\s+(\S+)\s*$")
_KNOWN_DEFAULTS = re.compile(r"(?i)cluecon|\$\$\{default_password\}")


def secrets_in(name: str, text: str) -> list[str]:
    """Every password-like value in a file that is not the placeholder."""
    found: list[str] = []
    if name.endswith(".xml"):
        for el in ET.fromstring(text).iter():
            for attr, value in el.attrib.items():
                if re.fullmatch(_SECRET_KEY, attr, re.I) and value != PLACEHOLDER:
                    found.append(f"{el.tag} {attr}={value}")
            label = el.get("name", "")
            if "value" in el.attrib and re.fullmatch(_SECRET_KEY, label, re.I):
                if el.get("value") != PLACEHOLDER:
                    found.append(f"{label}={el.get('value')}")
    for m in _KEY_VALUE.finditer(text):
        value = m.group(2).strip("\"'`").rstrip(",;)")
        if m.group(1).lower().endswith("_env") and re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
            continue  # secret_env = "NAME": the name of an environment variable, not a secret
        if value != PLACEHOLDER:
            found.append(f"{m.group(1)}={value}")
    for m in _URL_CREDENTIALS.finditer(text):
        if m.group(1) != PLACEHOLDER:
            found.append(f"url password {m.group(1)}")
    for m in _ESL_AUTH.finditer(text):
        if m.group(1) != PLACEHOLDER:
            found.append(f"auth {m.group(1)}")
    if not name.endswith(".md"):  # the README may name the stock default to warn about it
        found += [f"known default {m.group(0)}" for m in _KNOWN_DEFAULTS.finditer(text)]
    return found


def shipped_files() -> list[Path]:
    return sorted(p for base in (CONF, SYSTEMD) for p in base.rglob("*") if p.is_file())


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_real_password_is_shipped(path: Path) -> None:
    assert secrets_in(path.name, path.read_text(encoding="utf-8")) == []


def test_every_password_slot_holds_the_placeholder() -> None:
    # the placeholders are really there, i.e. the scanner looked at real password slots
    assert f'name="password" value="{PLACEHOLDER}"' in EVENT_SOCKET.read_text(encoding="utf-8")
    assert f"FSBARGE_ESL_PASSWORD={PLACEHOLDER}" in ENV_EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("x.xml", '<configuration><settings><param name="password" value="ClueCon"/></settings></configuration>'),
        ("x.xml", '<include><user id="1"><params><param name="password" value="1234"/></params></user></include>'),
        ("x.xml", '<include><user id="1"><params><param name="vm-password" value="9999"/></params></user></include>'),
        ("x.xml", '<include><user id="1"><params><param name="a1-hash" value="c6440e5d"/></params></user></include>'),
        ("fsbarge.env.example", "FSBARGE_ESL_PASSWORD=hunter2\n"),
        ("fsbarge.env.example", "export FSBARGE_ESL_PASSWORD='s3cr3t'\n"),
        ("fsbarge.toml.example", '[[freeswitch]]\npassword = "Tr0ub4dor&3"\n'),
        ("fsbarge.service", "[Service]\nEnvironment=FSBARGE_ESL_PASSWORD=s3cr3t\n"),
        ("fsbarge.env.example", "FSBARGE_DATABASE_URL=postgresql://fsbarge:pw123@db/fsbarge\n"),
        ("README.md", "Connect:\n\n    auth s3cret\n"),
        ("fs_cli.conf", "[default]\npassword => s3cret\n"),
        ("fsbarge.service", "# default ESL password ClueCon\n"),
    ],
)
def test_the_secret_scanner_flags_real_passwords(name: str, text: str) -> None:
    assert secrets_in(name, text)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("x.xml", f'<configuration><settings><param name="password" value="{PLACEHOLDER}"/></settings></configuration>'),
        ("fsbarge.env.example", f"FSBARGE_ESL_PASSWORD={PLACEHOLDER}\n"),
        ("fsbarge.toml.example", f'# password = "{PLACEHOLDER}"\n'),
        ("README.md", "The stock password ClueCon must go; `FSBARGE_ESL_PASSWORD` overrides `password`.\n"),
    ],
)
def test_the_secret_scanner_accepts_placeholders_and_prose(name: str, text: str) -> None:
    assert secrets_in(name, text) == []


def test_shipped_files_are_not_executable_or_private_keys() -> None:
    for path in shipped_files():
        text = path.read_text(encoding="utf-8")
        assert "PRIVATE KEY" not in text, path
        assert not os.access(path, os.X_OK) or path.suffix == ".sh", f"{path} should not be executable"
