"""python -m fsbarge.sim --port 8021 --password ClueCon: a standalone simulator with a console.

Console commands (stdin), for driving a daemon by hand:
  call <caller> <dest>          a phone dials (1001 1000 = customer calls agent)
  dial <ext> <dest> [noauth]    e.g. dial 1002 *331000 (noauth: IP-ACL phone, no user_name)
  press <uuid> <digits> [src]   DTMF from the phone (RTP, ENDPOINT, APP)
  hangup <uuid> [cause]         the phone hangs up
  ls                            channels (and who eavesdrops on whom)
  drop | notice | restart       failure modes: drop sockets, disconnect notice, FreeSWITCH restart
  stall | unstall | quit
A uuid may be abbreviated to a unique prefix.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gevent
import gevent.event
from gevent.fileobject import FileObjectThread

from .simulator import HEARTBEAT_SECONDS, FreeSwitchSim


def _resolve(sim: FreeSwitchSim, prefix: str) -> str:
    matches = [c.uuid for c in sim.channels() if c.uuid.startswith(prefix)]
    if len(matches) != 1:
        raise KeyError(f"{prefix!r} matches {len(matches)} channels")
    return matches[0]


def _console_line(sim: FreeSwitchSim, line: str) -> str | None:
    words = line.split()
    if not words:
        return None
    cmd, args = words[0].lower(), words[1:]
    if cmd == "call":
        call = sim.place_call(args[0], args[1])
        return f"a={call.a_uuid} b={call.b_uuid}"
    if cmd == "dial":
        return sim.dial(args[0], args[1], authenticated=not (len(args) > 2 and args[2] == "noauth"))
    if cmd == "press":
        sim.press(_resolve(sim, args[0]), args[1], args[2] if len(args) > 2 else "RTP")
        return "ok"
    if cmd == "hangup":
        sim.hangup(_resolve(sim, args[0]), args[1] if len(args) > 1 else "NORMAL_CLEARING")
        return "ok"
    if cmd == "ls":
        rows = []
        for c in sim.channels():
            mode = sim.eavesdrop_mode(c.uuid)
            extra = f" eavesdrop={sim.eavesdrop_target(c.uuid)} mode={mode}" if mode else ""
            app = c.running_app.app if c.running_app else ""
            rows.append(f"{c.uuid} {c.name} {c.state} {c.answer_state} app={app}{extra}")
        return "\n".join(rows) or "(no channels)"
    if cmd == "drop":
        return f"dropped {sim.drop_connections()}"
    if cmd == "notice":
        return f"noticed {sim.send_disconnect_notice()}"
    if cmd == "restart":
        return f"new Core-UUID {sim.shutdown_restart()}"
    if cmd == "stall":
        sim.stall_replies(True)
        return "stalled"
    if cmd == "unstall":
        sim.stall_replies(False)
        return "released"
    if cmd in ("quit", "exit"):
        raise SystemExit(0)
    return f"unknown command {cmd!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsbarge.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--core-uuid", default=None)
    parser.add_argument("--playback-seconds", type=float, default=0.5)
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_SECONDS, help="HEARTBEAT interval in seconds (0: none)")
    parser.add_argument("--no-console", action="store_true", help="do not read commands from stdin")
    args = parser.parse_args(argv)
    sim = FreeSwitchSim(password=args.password, core_uuid=args.core_uuid, host=args.host, port=args.port,
                        playback_seconds=args.playback_seconds, heartbeat_interval=args.heartbeat or None).start()
    print(f"FreeSWITCH simulator on {sim.host}:{sim.port} (Core-UUID {sim.core_uuid})", flush=True)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGINT, stop.set)
    gevent.signal_handler(signal.SIGTERM, stop.set)

    def console() -> None:
        stdin = FileObjectThread(sys.stdin)
        for line in stdin:
            try:
                out = _console_line(sim, line)
            except SystemExit:
                stop.set()
                return
            except (KeyError, IndexError, ValueError) as exc:
                out = f"error: {exc}"
            if out:
                print(out, flush=True)
        # stdin closed (e.g. started in the background): keep serving until a signal arrives.

    if not args.no_console:
        gevent.spawn(console)
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
