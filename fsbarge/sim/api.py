"""'api' commands (mod_commands) of the simulated switch, with FreeSWITCH's reply texts."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable

import gevent

from .model import CAUSES, Channel

if TYPE_CHECKING:  # pragma: no cover
    from .pbx import Pbx

VERSION = "FreeSWITCH Version 1.11.1-release~64bit ( 64bit)\n"

CHANNEL_COLUMNS = (
    "uuid direction created created_epoch name state cid_name cid_num ip_addr dest application "
    "application_data dialplan context read_codec read_rate read_bit_rate write_codec write_rate "
    "write_bit_rate secure hostname presence_id presence_data accountcode callstate callee_name "
    "callee_num callee_direction call_uuid sent_callee_name sent_callee_num initial_cid_name "
    "initial_cid_num initial_ip_addr initial_dest initial_dialplan initial_context"
).split()

CALL_A_COLUMNS = (
    "uuid direction created created_epoch name state cid_name cid_num ip_addr dest presence_id "
    "presence_data accountcode callstate callee_name callee_num callee_direction call_uuid hostname "
    "sent_callee_name sent_callee_num"
).split()
CALL_B_COLUMNS = (
    "uuid direction created created_epoch name state cid_name cid_num ip_addr dest presence_id "
    "presence_data accountcode callstate callee_name callee_num callee_direction sent_callee_name "
    "sent_callee_num"
).split()

NO_CHANNEL = "-ERR No such channel!\n"


def channel_row(ch: Channel, hostname: str) -> dict[str, str]:
    """One row of the core db 'channels' table, values as stored (not URL-encoded).

    FreeSWITCH quirk: 'application' is written on CHANNEL_EXECUTE only, so after an app returns
    the row keeps naming it until the next app starts.
    """
    read = ch.read_codec or ("", "", "")
    write = ch.write_codec or ("", "", "")
    app, app_data = ch.show_app
    return {
        "uuid": ch.uuid,
        "direction": ch.direction,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ch.created)),
        "created_epoch": str(int(ch.created)),
        "name": ch.name,
        "state": ch.state,
        "cid_name": ch.profile.caller_id_name,
        "cid_num": ch.profile.caller_id_number,
        "ip_addr": ch.ip_addr,
        "dest": ch.profile.destination_number,
        "application": app,
        "application_data": app_data,
        "dialplan": "XML",
        "context": "default",
        "read_codec": read[0],
        "read_rate": read[1],
        "read_bit_rate": read[2],
        "write_codec": write[0],
        "write_rate": write[1],
        "write_bit_rate": write[2],
        "secure": "",
        "hostname": hostname,
        "presence_id": ch.presence_id or "",
        "presence_data": "",
        "accountcode": "",
        "callstate": ch.callstate,
        "callee_name": ch.callee_name,
        "callee_num": ch.callee_num,
        "callee_direction": "SEND" if (ch.callee_name or ch.sent_callee_name) else "",
        "call_uuid": ch.bridged_call_uuid,
        "sent_callee_name": ch.sent_callee_name,
        "sent_callee_num": ch.sent_callee_num,
        "initial_cid_name": ch.initial.get("cid_name", ""),
        "initial_cid_num": ch.initial.get("cid_num", ""),
        "initial_ip_addr": ch.initial.get("ip_addr", ""),
        "initial_dest": ch.initial.get("dest", ""),
        "initial_dialplan": "XML",
        "initial_context": "default",
    }


def _json_rows(rows: list[dict[str, str]]) -> str:
    # FreeSWITCH prints '{"row_count": 0}\n' for no rows but compact JSON without newline otherwise.
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"), ensure_ascii=False)


def _text_rows(columns: list[str], rows: list[dict[str, str]]) -> str:
    out = [",".join(columns)]
    out += [",".join(r.get(c, "") for c in columns) for r in rows]
    return "\n".join(out) + f"\n\n{len(rows)} total.\n"


class Api:
    """Executes 'api'/'bgapi' commands against the PBX; returns (output, found). The output of
    ``originate`` is its job (:class:`fsbarge.sim.originate.OriginateJob`): the result comes later."""

    def __init__(self, pbx: "Pbx") -> None:
        self.pbx = pbx
        self.handlers: dict[str, Callable[[str], Any]] = {
            "status": self.status,
            "version": lambda arg: VERSION,
            "hostname": lambda arg: self.pbx.core.hostname,
            "show": self.show,
            "uuid_exists": self.uuid_exists,
            "uuid_getvar": self.uuid_getvar,
            "global_getvar": self.global_getvar,
            "uuid_setvar": self.uuid_setvar,
            "uuid_kill": self.uuid_kill,
            "uuid_recv_dtmf": self.uuid_recv_dtmf,
            "uuid_send_dtmf": self.uuid_send_dtmf,
            "uuid_dump": self.uuid_dump,
            "uuid_displace": self.uuid_displace,
            "hash": self.hash,
            "sofia": self.sofia,
            "eval": lambda arg: arg,
            "originate": self.originate,
        }

    def execute(self, cmd: str, arg: str | None) -> tuple[Any, bool]:
        """switch_api_execute: fires API, then runs the command."""
        post = [("API-Command", cmd)]
        if arg:
            post.append(("API-Command-Argument", arg))
        self.pbx.fire("API", None, post=post)
        handler = self.handlers.get(cmd.lower())
        if handler is None:
            return f"-ERR {cmd} Command not found!\n", False
        return handler((arg or "").strip()), True

    def global_getvar(self, arg: str) -> str:
        """mod_commands prints the value with no newline; an unset variable prints nothing.
        switch_core.c sets ``core_uuid`` at start-up."""
        return self.pbx.core.core_uuid if arg == "core_uuid" else ""

    def status(self, arg: str) -> str:
        up = max(0.0, self.pbx.clock() - self.pbx.core.started)
        us = int(up * 1_000_000)
        secs, micro = divmod(us, 1_000_000)
        msec, micro = divmod(micro, 1000)
        mins, secs = divmod(secs, 60)
        hours, mins = divmod(mins, 60)
        days, hours = divmod(hours, 24)
        years, days = divmod(days, 365)
        n = len(self.pbx.channels)
        return (
            f"UP {years} years, {days} days, {hours} hours, {mins} minutes, {secs} seconds, "
            f"{msec} milliseconds, {micro} microseconds\n"
            "FreeSWITCH (Version 1.11.1-release  64bit) is ready\n"
            f"{self.pbx.sessions_since_startup} session(s) since startup\n"
            f"{n} session(s) - peak {self.pbx.peak_sessions}, last 5min {self.pbx.peak_sessions} \n"
            "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
            "100 session(s) max\n"
            "min idle cpu 0.00/99.73\n"
            "Current Stack Size/Max 240K/8192K\n"
        )

    def show(self, arg: str) -> str:
        words = arg.split()
        what = words[0].lower() if words else ""
        as_json = len(words) >= 3 and words[1].lower() == "as" and words[2].lower() == "json"
        host = self.pbx.core.hostname
        channels = sorted(self.pbx.channels.values(), key=lambda c: c.created)
        if what == "channels":
            if len(words) >= 2 and words[1].lower() == "count":
                return f"\n{len(channels)} total.\n"
            rows = [channel_row(c, host) for c in channels]
            return _json_rows(rows) if as_json else _text_rows(CHANNEL_COLUMNS, rows)
        if what == "calls":
            rows = []
            for a in channels:
                b = self.pbx.channels.get(a.peer) if a.peer and a.originator else None
                if b is None:
                    continue
                ra, rb = channel_row(a, host), channel_row(b, host)
                row = {c: ra[c] for c in CALL_A_COLUMNS}
                row.update({f"b_{c}": rb[c] for c in CALL_B_COLUMNS})
                row["call_created_epoch"] = ra["created_epoch"]
                rows.append(row)
            columns = CALL_A_COLUMNS + [f"b_{c}" for c in CALL_B_COLUMNS] + ["call_created_epoch"]
            return _json_rows(rows) if as_json else _text_rows(columns, rows)
        return "-USAGE: show codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|limits|status\n"

    def _channel(self, uuid: str) -> Channel | None:
        ch = self.pbx.channels.get(uuid)
        return ch if ch is not None and not ch.destroyed else None

    def uuid_exists(self, arg: str) -> str:
        return "true" if arg and self._channel(arg.split()[0]) else "false"

    def uuid_getvar(self, arg: str) -> str:
        words = arg.split()
        if len(words) < 2:
            return "-USAGE: <uuid> <var>\n"
        ch = self._channel(words[0])
        if ch is None:
            return NO_CHANNEL
        return ch.variables.get(words[1], "_undef_")

    def uuid_setvar(self, arg: str) -> str:
        words = arg.split(None, 2)
        if len(words) < 2:
            return "-USAGE: <uuid> <var> [value]\n"
        ch = self._channel(words[0])
        if ch is None:
            return NO_CHANNEL
        name, _, value = words[1].partition("=")
        ch.set_var(name, value or (words[2] if len(words) > 2 else None))
        return "+OK\n"

    def uuid_kill(self, arg: str) -> str:
        words = arg.split()
        if not words:
            return "-USAGE: <uuid> [cause]\n"
        ch = self._channel(words[0])
        if ch is None:
            return NO_CHANNEL
        cause = words[1].upper() if len(words) > 1 and words[1].upper() in CAUSES else "NORMAL_CLEARING"
        self.pbx.hangup_channel(ch, cause)
        return "+OK\n"

    def uuid_recv_dtmf(self, arg: str) -> str:
        words = arg.split()
        if len(words) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        ch = self._channel(words[0])
        if ch is None:
            return NO_CHANNEL
        digits = words[1].split("@")[0]
        self.pbx.press(ch, digits, source="APP")
        return f"+OK {ch.uuid} received DTMF {digits}.\n"

    def uuid_send_dtmf(self, arg: str) -> str:
        # Sends the digits out to the phone: eavesdrop never sees them (capture 07).
        words = arg.split()
        if len(words) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        ch = self._channel(words[0])
        if ch is None:
            return NO_CHANNEL
        return f"+OK {ch.uuid} sent DTMF {words[1]}.\n"

    def uuid_displace(self, arg: str) -> str:
        """``<uuid> start|stop <file> [<limit>] [flags]`` (mod_commands): one displace per file per
        channel, as in FreeSWITCH; the sim does not play the file, a test reads displace_log."""
        words = arg.split()
        if len(words) < 3 or words[1] not in ("start", "stop"):
            return "-USAGE: <uuid> [start|stop] <path> [<limit>] [mux]\n"
        ch = self._channel(words[0])
        if ch is None:
            return "-ERR Cannot locate session!\n"
        running = self.pbx.displacing.setdefault(ch.uuid, set())
        action, path = words[1], words[2]
        limit = int(words[3]) if len(words) > 3 and words[3].isdigit() else 0
        flags = words[4] if len(words) > 4 else ""
        if action == "start":
            if path in running:
                return "-ERR Cannot displace session!\n"
            running.add(path)
            if limit:  # the bug's time limit (a real tone may end sooner)
                gevent.spawn_later(limit, running.discard, path)
        elif path in running:
            running.discard(path)
        else:
            return "-ERR Cannot stop displace session!\n"  # mod_commands' text
        self.pbx.displace_log.append((ch.uuid, action, path, limit, flags))
        return "+OK Success\n"

    def uuid_dump(self, arg: str) -> str:
        words = arg.split()
        ch = self._channel(words[0]) if words else None
        if ch is None:
            return NO_CHANNEL
        event = self.pbx.factory.build("CHANNEL_DATA", ch, with_vars=True)
        if len(words) > 1 and words[1] == "json":
            return event.json().decode("utf-8", "replace")
        return "".join(f"{k}: {v}\n" for k, v in event.headers)

    def originate(self, arg: str) -> Any:
        """``originate {vars}user/<ext> &app(args)|<exten>``: a job (see fsbarge.sim.originate)."""
        return self.pbx.originate(arg)

    def hash(self, arg: str) -> str:
        parts = arg.split("/", 3)
        if len(parts) < 3:
            return "-ERR Usage: hash insert|select|delete/realm/key[/value]\n"
        op, realm, key = parts[0].lower(), parts[1], parts[2]
        table = self.pbx.hash.setdefault(realm, {})
        if op == "insert" and len(parts) == 4:
            table[key] = parts[3]
            return "+OK\n"
        if op == "delete":
            return "+OK\n" if table.pop(key, None) is not None else "-ERR Not found\n"
        if op == "select":
            return table.get(key, "")
        return "-ERR Usage: hash insert|select|delete/realm/key[/value]\n"

    def sofia(self, arg: str) -> str:
        return (
            "                     Name\t   Type\t                                      Data\tState\n"
            "=================================================================================================\n"
            "                127.0.0.1\t  alias\t                                  internal\tALIASED\n"
            "                 internal\tprofile\t              sip:mod_sofia@127.0.0.1:5060\tRUNNING (0)\n"
            "=================================================================================================\n"
            "1 profile 1 alias\n"
        )
