"""A real HTTP receiver on loopback for the webhook tests: it verifies the signature as a CRM would,
with the receiver's check the README gives (`readme_verified`, read from README.md itself).

It runs in a thread of its own (the standard library's server), so it answers whatever the gevent
hub of the test is doing. ``behaviour`` says how it answers the next requests:

- "ok": 204 when both signatures verify with its secret (the timestamped one as the README says), 401 otherwise
- "500": 500 (after recording the request)
- "hang": reads the request, records it, then answers nothing until released
- "cut": sends a status line and half the promised body, then closes the connection
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import re
from collections.abc import Callable
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


@cache
def readme_verified() -> Callable[..., bool]:
    """``verified(raw_body, headers, secret)`` exactly as README.md's "Webhooks" section prints it."""
    section = README.read_text(encoding="utf-8").split("### Webhooks", 1)[1]
    [code] = [block for block in re.findall(r"```python\n(.*?)```", section, re.S) if "def verified(" in block][:1]
    namespace: dict[str, Any] = {}
    exec(compile(code, f"{README}:Webhooks", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verified"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self, secret: str, *, port: int = 0, behaviour: str = "ok") -> None:
        self.secret = secret
        self.behaviour = behaviour
        self.requests: list[dict[str, Any]] = []  # every request seen, in arrival order
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                seen = {
                    "path": self.path,
                    "event": self.headers.get("X-Fsbarge-Event"),
                    "delivery": self.headers.get("X-Fsbarge-Delivery"),
                    "signature_ok": hmac.compare_digest(expected, self.headers.get("X-Fsbarge-Signature", ""))
                    and readme_verified()(body, self.headers, receiver.secret),
                    "headers": dict(self.headers),
                    "body": body,
                    "json": json.loads(body),
                    "behaviour": receiver.behaviour,
                }
                with receiver.lock:
                    receiver.requests.append(seen)
                mode = receiver.behaviour
                if mode == "hang":
                    receiver.release.wait(30)
                    self.close_connection = True
                    return
                if mode == "cut":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"half\":")
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                status = 500 if mode == "500" else (204 if seen["signature_ok"] else 401)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/fsbarge"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[dict[str, Any]]:
        """Requests answered 2xx with a good signature."""
        with self.lock:
            return [r for r in self.requests if r["behaviour"] == "ok" and r["signature_ok"]]
