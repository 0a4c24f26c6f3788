"""A gevent hub in its own OS thread, for ``FreeSwitchSim(threaded=True)``.

Uses the real thread primitives even if the caller monkey-patched ``threading``, so a test that
blocks its own thread (plain sockets, subprocess.run, time.sleep) cannot starve the simulator.
Calls from other threads are marshalled into the hub and waited for cooperatively.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import gevent
import gevent.event
from gevent import monkey

T = TypeVar("T")

_start_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_get_ident = monkey.get_original("_thread", "get_ident")


class HubThread:
    """Runs ``setup`` in a fresh thread's hub, then keeps that hub alive until ``stop``."""

    def __init__(self) -> None:
        self.ident: int | None = None
        self._loop: Any = None
        self._wakeup: Any = None

    @property
    def running(self) -> bool:
        return self.ident is not None

    def in_thread(self) -> bool:
        return self.ident is not None and _get_ident() == self.ident

    def start(self, setup: Callable[[], None], teardown: Callable[[], None]) -> None:
        ready = _allocate_lock()
        ready.acquire()
        errors: list[BaseException] = []

        def run() -> None:
            hub = gevent.get_hub()
            done = gevent.event.Event()
            self._loop = hub.loop
            self._wakeup = hub.loop.async_()
            self._wakeup.start(done.set)
            try:
                setup()
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.release()
                return
            self.ident = _get_ident()
            ready.release()
            done.wait()
            teardown()
            gevent.sleep(0)
            self._wakeup.close()

        _start_thread(run, ())
        ready.acquire()
        if errors:
            raise errors[0]

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the hub thread and return its result (or raise its exception)."""
        if not self.running or self.in_thread():
            return fn(*args, **kwargs)
        done = _allocate_lock()
        done.acquire()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = fn(*args, **kwargs)
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.release()

        self._loop.run_callback_threadsafe(lambda: gevent.spawn(run))
        while not done.acquire(False):
            gevent.sleep(0.001)  # cooperative in the caller's own hub while the other thread works
        if "error" in box:
            raise box["error"]
        return box["result"]

    def stop(self) -> None:
        if self._wakeup is not None and self.ident is not None:
            self.ident = None
            self._wakeup.send()
