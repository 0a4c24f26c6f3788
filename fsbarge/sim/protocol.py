"""parse_command() of mod_event_socket: what each client command does and what it replies."""

from __future__ import annotations

from .connection import Connection
from .host import EslHost
from .model import EVENT_NAMES, new_uuid
from .originate import OriginateJob
from .wire import Command, api_response, command_reply, disconnect_notice


def dispatch(sim: EslHost, conn: Connection, cmd: Command) -> None:
    """parse_command(): the reply, then whatever the command sets in motion."""
    line = cmd.line.strip()
    low = line.lower()
    if low.startswith("exit") or low.startswith("..."):
        conn.send(command_reply("+OK bye"))
        conn.send(disconnect_notice())
        conn.close_after_flush()
        return
    if not conn.authed:
        if low.startswith("auth "):
            if not sim.reject_auth and line[5:] == sim.password:
                conn.authed = True
                conn.send(command_reply("+OK accepted"))
            else:
                # mod_event_socket: '-ERR invalid', then the disconnect notice, then close.
                conn.send(command_reply("-ERR invalid"))
                conn.send(disconnect_notice())
                conn.close_after_flush()
            sim.changed()
            return
        if low.startswith("userauth "):
            conn.send(command_reply("-ERR invalid"))
            conn.send(disconnect_notice())
            conn.close_after_flush()
            return
        conn.send(command_reply("-ERR command not found"))
        return
    verb = low.split(" ", 1)[0]
    if verb in ("event", "nixevent", "noevents"):
        conn.send(command_reply(handle_event_command(conn, cmd)))
        sim.changed()
    elif verb == "filter":
        conn.send(command_reply(handle_filter_command(conn, cmd)))
    elif verb == "myevents":
        conn.myevents = line[9:].split()[0] if len(line) > 9 else None
        conn.all_events = True
        conn.events_on = True
        if "json" in low:
            conn.fmt = "json"
        conn.send(command_reply("+OK Events Enabled"))
    elif verb == "sendmsg":
        reply, ch = sim.pbx.queue_sendmsg(cmd)
        conn.send(command_reply(reply))
        if ch is not None:
            sim.pbx.pump(ch)
    elif verb == "sendevent":
        conn.send(command_reply(f"+OK {sim.pbx.sendevent(cmd)}"))
    elif verb == "api":
        api_cmd, _, arg = line[4:].strip().partition(" ")
        output, _found = sim.api.execute(api_cmd, arg or None)
        if isinstance(output, OriginateJob):
            output = output.result.get()  # api blocks this connection until the originate ends
        conn.send(api_response(output or "-ERR no reply\n"))
    elif verb == "bgapi":
        api_cmd, _, arg = line[6:].strip().partition(" ")
        job = cmd.get("Job-UUID") or new_uuid()
        conn.send(command_reply(f"~Reply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n"))
        output, _found = sim.api.execute(api_cmd, arg or None)
        post = [("Job-UUID", job), ("Job-Command", api_cmd)]
        if arg:
            post.append(("Job-Command-Arg", arg))

        pbx = sim.pbx  # the one this job ran on, even if FreeSWITCH restarts before it ends

        def done(text: str) -> None:
            pbx.fire("BACKGROUND_JOB", None, post=post, body=text or "Command returned no output!")

        if isinstance(output, OriginateJob):
            output.then(done)  # the job thread fires it when the originate ends
        else:
            done(output)
    elif verb == "log":
        conn.send(command_reply("+OK log level  [7]"))
    elif verb == "nolog":
        conn.send(command_reply("-ERR not loging"))
    elif verb in ("linger", "nolinger"):
        conn.send(command_reply("-ERR not controlling a session"))
    elif verb == "divert_events":
        conn.send(command_reply("-ERR not controlling a session."))
    else:
        conn.send(command_reply("-ERR command not found"))


def handle_event_command(conn: Connection, cmd: Command) -> str:
    """'event [plain|json|xml] <names...>' (accumulates), 'nixevent', 'noevents'."""
    words = cmd.line.split()
    verb = words[0].lower()
    if verb == "noevents":
        if conn.events_on:
            conn.events_on = False
            conn.all_events = False
            conn.events.clear()
            conn.customs.clear()
            return "+OK no longer listening for events"
        return "-ERR not listening for events"
    names = words[1:]
    keys = 0
    custom = False
    if verb == "nixevent":
        for name in names:
            if custom:
                conn.customs.discard(name)
                continue
            up = name.upper()
            if up in EVENT_NAMES:
                keys += 1
                if up == "CUSTOM":
                    custom = True
                elif up == "ALL":
                    conn.all_events = False
                    conn.events.clear()
                else:
                    if conn.all_events:
                        conn.all_events = False
                        conn.events = set(EVENT_NAMES) - {"ALL"}
                    conn.events.discard(up)
        if not keys:
            return "-ERR no keywords supplied"
        conn.events_on = True
        return "+OK events nixed"
    for i, name in enumerate(names):
        if i == 0 and name.lower() in ("plain", "json", "xml"):
            conn.fmt = name.lower()
            continue
        if custom:
            conn.customs.add(name)
            continue
        up = name[13:].upper() if name.upper().startswith("SWITCH_EVENT_") else name.upper()
        if up in EVENT_NAMES:
            keys += 1
            if up == "ALL":
                conn.all_events = True
            conn.events.add(up)
            if up == "CUSTOM":
                custom = True
    if not keys:
        return "-ERR no keywords supplied"
    conn.events_on = True
    return f"+OK event listener enabled {conn.fmt}"


def handle_filter_command(conn: Connection, cmd: Command) -> str:
    rest = cmd.line[7:].strip()
    name, _, value = rest.partition(" ")
    if name.lower() == "delete" and value:
        name, _, value = value.partition(" ")
        if name.lower() == "all":
            conn.filters.clear()
        else:
            conn.filters = [(k, v) for k, v in conn.filters if not (k == name and (not value or v == value))]
        return f"+OK filter deleted. [{name}][{value}]"
    if value:
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        conn.filters.append((name, value))
        return f"+OK filter added. [{name}]=[{value}]"
    return "-ERR invalid syntax"
