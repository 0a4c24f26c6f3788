"""fsbarge.logs: JSON lines or console text, level filtering, and no secret in any line."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import subprocess
import sys

import pytest
import structlog

from fsbarge.logs import configure_logging, get_logger

SECRET = "ClueCon-Sekr1t"


@pytest.fixture(autouse=True)
def restore_logging():
    """Each test configures logging its own way; put structlog and the stdlib root back afterwards."""
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    structlog.configure(**saved_structlog)
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def configured(level: str = "info", **kwargs) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, stream=stream, secrets={SECRET}, **kwargs)
    return stream


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------- format


def test_each_line_is_json_with_event_level_and_utc_timestamp():
    stream = configured()
    log = get_logger("fsbarge.test")
    log.info("call answered", node="pbx1", uuid="e8ba682b")
    log.warning("node unreachable", node="pbx2", attempt=3)
    first, second = json_lines(stream)
    assert first["event"] == "call answered" and first["level"] == "info"
    assert (first["node"], first["uuid"], first["logger"]) == ("pbx1", "e8ba682b", "fsbarge.test")
    assert second["level"] == "warning" and second["attempt"] == 3
    stamp = dt.datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert first["timestamp"].endswith("Z") and stamp.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 60


def test_json_is_the_default_on_a_non_terminal_stream_and_console_on_a_terminal():
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger().info("to a pipe")
    assert json.loads(stream.getvalue())["event"] == "to a pipe"

    tty = TTY()
    configure_logging(stream=tty)
    get_logger().info("to a terminal", node="pbx1")
    text = tty.getvalue()
    assert "to a terminal" in text and "pbx1" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_mode_renders_readable_key_values():
    stream = configured(json=False)
    get_logger("fsbarge.daemon.esl").info("connected", node="pbx1", uuid="e8ba682b", password=SECRET)
    line = stream.getvalue()
    assert "connected" in line and "[info" in line and "[fsbarge.daemon.esl]" in line
    assert "node=pbx1" in line and "uuid=e8ba682b" in line and "password=***" in line
    assert SECRET not in line
    assert "\x1b[" not in line  # no colour codes when the stream is not a terminal


def test_call_context_bound_on_the_logger_or_in_contextvars_is_on_every_line():
    stream = configured()
    call_log = get_logger("fsbarge.service").bind(node="pbx1", uuid="u-1")
    call_log.info("parked")
    structlog.contextvars.bind_contextvars(node="pbx2", uuid="u-2")
    get_logger().info("dtmf", digit="2")
    logging.getLogger("greenswitch").warning("socket closed")  # a library's line gets the context too
    assert [(line["node"], line["uuid"]) for line in json_lines(stream)] == [
        ("pbx1", "u-1"), ("pbx2", "u-2"), ("pbx2", "u-2"),
    ]


# ---------------------------------------------------------------------------------------- filtering


def test_lines_below_the_level_are_dropped():
    stream = configured("warning")
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in json_lines(stream)] == ["w", "e"]


def test_a_filtered_out_call_does_no_rendering_work():
    class Explosive:
        def __repr__(self) -> str:
            raise AssertionError("rendered although filtered out")

    stream = configured("info")
    log = get_logger().bind(node="pbx1")
    log.debug("every event", payload=Explosive())
    assert stream.getvalue() == ""


def test_stdlib_logging_from_libraries_goes_through_the_same_level_and_format():
    stream = configured("info")
    logging.getLogger("greenswitch").debug("noise")
    logging.getLogger("greenswitch").error("Error receiving data from %s", "pbx1")
    (line,) = json_lines(stream)
    assert line["event"] == "Error receiving data from pbx1"
    assert (line["level"], line["logger"]) == ("error", "greenswitch")


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="loud"):
        configure_logging("loud", stream=io.StringIO())


def test_configuring_twice_moves_existing_loggers_to_the_new_stream_and_level():
    module_level_log = get_logger("fsbarge.daemon")  # obtained before either configuration
    first = configured("info")
    module_level_log.info("one")
    second = configured("error")
    module_level_log.info("two (filtered now)")
    module_level_log.error("three")
    logging.getLogger("x").error("four")
    assert [line["event"] for line in json_lines(first)] == ["one"]
    assert [line["event"] for line in json_lines(second)] == ["three", "four"]  # one stdlib handler, not two


# ---------------------------------------------------------------------------------------- redaction


def test_a_registered_secret_never_appears_anywhere_in_a_json_line():
    stream = configured()
    get_logger().info(
        f"sent auth {SECRET}",
        command=f"auth {SECRET}",
        nested={"headers": {"Reply-Text": f"-ERR {SECRET} invalid"}, "list": ["a", ("b", f"x{SECRET}x")]},
        error=ValueError(f"bad {SECRET}"),
        raw=f"auth {SECRET}".encode(),
    )
    text = stream.getvalue()
    assert SECRET not in text
    (line,) = json_lines(stream)
    assert line["event"] == "sent auth ***"
    assert line["command"] == "auth ***"
    assert line["nested"] == {"headers": {"Reply-Text": "-ERR *** invalid"}, "list": ["a", ["b", "x***x"]]}
    assert line["error"] == "ValueError('bad ***')"
    assert line["raw"] == "auth ***"


def test_a_secret_inside_an_exception_traceback_is_redacted():
    stream = configured()
    try:
        raise ConnectionError(f"auth {SECRET} rejected")
    except ConnectionError:
        get_logger().exception("auth failed", node="pbx1")
    (line,) = json_lines(stream)
    assert "ConnectionError: auth *** rejected" in line["exception"]
    assert "Traceback" in line["exception"]
    assert SECRET not in stream.getvalue()


def test_a_secret_in_a_stdlib_record_and_its_exception_is_redacted():
    stream = configured(json=False)
    try:
        raise RuntimeError(f"auth {SECRET}")
    except RuntimeError:
        logging.getLogger("greenswitch").exception("sending %s", f"auth {SECRET}")
    text = stream.getvalue()
    assert "sending auth ***" in text and "RuntimeError: auth ***" in text
    assert SECRET not in text


def test_values_under_secret_looking_keys_are_redacted_at_any_depth():
    stream = configured()
    get_logger().info(
        "node config",
        password="not-registered-pw",
        esl_password=1234,
        api_token="tok-abc",
        client_secret="s3",
        node={"name": "pbx1", "host": "127.0.0.1", "password": "nested-pw"},
        nodes=[{"Password": "in-a-list-pw"}],
        empty_password=None,
        host="127.0.0.1",
    )
    (line,) = json_lines(stream)
    assert line["password"] == line["esl_password"] == line["api_token"] == line["client_secret"] == "***"
    assert line["node"] == {"name": "pbx1", "host": "127.0.0.1", "password": "***"}
    assert line["nodes"] == [{"Password": "***"}]
    assert line["empty_password"] is None  # nothing to hide, and saying so helps debugging
    assert line["host"] == "127.0.0.1"
    for value in ("not-registered-pw", "1234", "tok-abc", "nested-pw", "in-a-list-pw"):
        assert value not in stream.getvalue()


def test_short_secrets_are_hidden_by_key_but_not_substituted_inside_text():
    stream = io.StringIO()
    configure_logging(stream=stream, secrets={"12", ""})
    get_logger().info("uuid 1234", uuid="c5c83ace-1234", password="12")
    (line,) = json_lines(stream)
    assert (line["event"], line["uuid"], line["password"]) == ("uuid 1234", "c5c83ace-1234", "***")


def test_secrets_come_from_the_latest_configuration():
    first = io.StringIO()
    configure_logging(stream=first, secrets={"old-secret-1"})
    second = io.StringIO()
    configure_logging(stream=second, secrets={"new-secret-2"})
    get_logger().info("x", a="old-secret-1", b="new-secret-2")
    (line,) = json_lines(second)
    assert (line["a"], line["b"]) == ("old-secret-1", "***")
    assert first.getvalue() == ""


def test_the_config_passwords_are_what_the_daemon_registers():
    from fsbarge.config import parse_config

    config = parse_config(
        f'[[freeswitch]]\nname = "pbx1"\nhost = "127.0.0.1"\npassword = "{SECRET}"\n'
        '[[teams]]\nname = "t"\nagents = ["1000"]\nsupervisors = ["1002"]\n',
        "/etc/fsbarge/fsbarge.toml",
        {},
    )
    stream = io.StringIO()
    configure_logging(stream=stream, secrets=config.all_passwords())
    get_logger().info("connecting", node=config.nodes[0].name, reply=f"-ERR invalid {SECRET}")
    assert SECRET not in stream.getvalue()
    assert json_lines(stream)[0]["reply"] == "-ERR invalid ***"


def test_alembic_chatter_is_silenced_at_start():
    """A daemon start loads the migrations; Alembic's seven `setup plugin` INFO lines and its "Context
    impl SQLiteImpl." and "Will assume transactional DDL." stay out of the log, while the lines
    saying which migration runs still come through."""
    code = (
        "import io, sys\n"
        "from fsbarge.logs import configure_logging\n"
        "from fsbarge.store.migrate import upgrade\n"
        "out = io.StringIO()\n"
        "configure_logging('info', stream=out, json=True)\n"
        "upgrade('sqlite://')\n"
        "sys.stdout.write(out.getvalue())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "setup plugin" not in proc.stdout
    assert "Context impl" not in proc.stdout and "Will assume" not in proc.stdout  # on every start
    assert "Running upgrade" in proc.stdout  # the same stream, not silenced wholesale
