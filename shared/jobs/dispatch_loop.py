"""The dispatch passes of one process, coalesced: a burst of submits costs one pass, not one each.

Every commit that can change admission (a submit, a job ending, a quota change, a resume) asks for
a pass. Run inline, each submit would pay for its own pass (a transaction, the paused flag, the
slot count) and a burst of them would queue on the `dispatch_state` row lock. Here one thread per
process runs the passes one after another, and every request made while a pass runs is served by
the next single pass: N submits arriving together cost at most two passes. Passes from different
processes still take the `dispatch_state` row lock first, so they never hand out the same slot.

A request is served by a pass that *started* after it (it sees the committed row that asked);
`request_and_wait` lets a caller answer only once that pass ended, so that a client's next read
sees its job admitted, while `request` returns at once (resuming a queue with thousands waiting).
A pass admits at most `admissions_per_pass` jobs in one transaction and asks for another pass when
it used them all, so that no waiter ever waits behind one long pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from sqlalchemy.orm import Session, sessionmaker

from shared.jobs.dispatch import DispatchPolicy, dispatch_in
from shared.observability import EFFECT_FAILURES

log = structlog.get_logger(__name__)

ADMISSIONS_PER_PASS = 64
# How long an answer may wait for its pass. Past it the answer goes out and admission follows in
# the background: only a pass stuck behind another process's lock would take this long.
DEFAULT_WAIT_S = 5.0


class DispatchLoop:
    """Runs `run_pass` on one thread whenever asked, one pass for all requests made meanwhile.

    `run_pass` returns True when it stopped with work left (it admitted its cap): another pass
    follows at once."""

    def __init__(self, run_pass: Callable[[], bool], wait_s: float = DEFAULT_WAIT_S) -> None:
        self._run_pass = run_pass
        self._wait_s = wait_s
        self._condition = threading.Condition()
        # Requests are numbered; a pass serves every request numbered up to the newest one when it
        # started, and `_served` is the newest number a finished pass served.
        self._requested = 0
        self._taken = 0
        self._served = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> DispatchLoop:
        self._thread = threading.Thread(target=self._loop, name="temper-dispatch", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop after the pass under way (if any); waiters are released."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def requested(self) -> int:
        """How many passes this process asked for so far (each served, maybe by a shared pass)."""
        return self._requested

    def request(self) -> int:
        """Ask for a pass; returns the request's number (for `wait`) without waiting."""
        with self._condition:
            self._requested += 1
            self._condition.notify_all()
            return self._requested

    def wait(self, number: int, timeout_s: float | None = None) -> bool:
        """Wait until a pass that started after request `number` has ended; False on timeout."""
        timeout = self._wait_s if timeout_s is None else timeout_s
        with self._condition:
            return self._condition.wait_for(lambda: self._served >= number or self._closed, timeout)

    def request_and_wait(self) -> bool:
        number = self.request()
        if threading.current_thread() is self._thread:
            return False  # a commit made by a pass itself: the loop cannot wait for its own next pass
        return self.wait(number)

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._requested > self._taken or self._closed)
                if self._closed:
                    return
                serving = self._taken = self._requested
            more = False
            try:
                more = self._run_pass()
            except Exception as exc:
                # The commits that asked went through; beat's periodic pass admits what this missed.
                EFFECT_FAILURES.labels(effect="DispatchJobs").inc()
                log.error("dispatch pass failed", error=f"{type(exc).__name__}: {exc}")
            with self._condition:
                self._served = serving
                self.passes += 1
                self._condition.notify_all()
            if more:
                self.request()


def process_dispatch_loop(
    session_factory: sessionmaker[Session],
    policy: DispatchPolicy,
    admissions_per_pass: int = ADMISSIONS_PER_PASS,
    wait_s: float = DEFAULT_WAIT_S,
) -> DispatchLoop:
    """The loop of an API process: each pass in its own transaction of `session_factory`."""

    def run_pass() -> bool:
        admitted = dispatch_in(session_factory, policy, limit=admissions_per_pass)
        return len(admitted) >= admissions_per_pass

    return DispatchLoop(run_pass, wait_s=wait_s)
