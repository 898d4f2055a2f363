"""An open-loop HTTP load generator that cannot collapse on its own: requests leave on a fixed
schedule from several processes, each with a bounded number of slots, and each slot holds one
keep-alive connection per target with one request in flight.

A pooled client (httpx) keeps requests it cannot send yet in its pool's queue, and its bookkeeping
grows with that queue (quadratic in httpx 0.28): at a few hundred requests per second on two cores
the generator itself saturated while the API idled. Here nothing queues: when every slot waits on
an answer the next request simply leaves late, and its send lag (against its schedule) says so.
Latency counts from the scheduled time, so a server that falls behind is charged for the wait.

The client is a minimal HTTP/1.1 one (Content-Length or chunked answers, keep-alive): about 0.2 ms
of CPU per request against 1.3 ms for httpx, measured here, which matters on a two-core machine
where the generator shares the cores with the server it measures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlencode, urlsplit


class HttpError(Exception):
    pass


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to `base_url`, one request at a time, opened on first use
    and again after an error."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise HttpError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            content = bytearray()
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                content += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            await self.reader.readline()
            answer = bytes(content)
        elif length is not None:
            answer = await self.reader.readexactly(length)
        else:
            answer = await self.reader.read()
            close = True
        if close:
            await self.close()
        return status, answer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def _encode(kwargs: dict[str, Any], path: str) -> tuple[str, dict[str, str], bytes]:
    """The `httpx`-style arguments of a request maker (headers, params, json) as path, headers, body."""
    headers = dict(kwargs.get("headers") or {})
    if kwargs.get("params"):
        path = f"{path}?{urlencode(kwargs['params'], doseq=True)}"
    body = b""
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
        headers["Content-Type"] = "application/json"
    return path, headers, body


@dataclass
class RouteFigures:
    route: str
    sent: int
    errors: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # How late the generator sent requests against their schedule: large values mean the client,
    # not the server, fell behind (its latencies then include its own delay).
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    # The part of the lag the generator itself caused (a slot was free but its event loop woke
    # late): near zero unless the client is starved of CPU. The rest is waiting for a free slot,
    # i.e. every slot waiting on an answer: the server fell behind.
    own_lag_p99_ms: float
    first_error: str | None = None
    # CPU time per request, machine-load independent: the API processes, their Postgres backends,
    # and the load generator (what a quiet machine's cores must cover at the measured rate).
    api_cpu_ms: float = 0.0
    db_cpu_ms: float = 0.0
    client_cpu_ms: float = 0.0
    new_db_sessions: int = 0  # Postgres connections opened during the route (pool churn)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


RequestMaker = Callable[[int], tuple[str, str, dict[str, Any], int]]


@dataclass
class LoadShare:
    """What one load process measured: per request, latency from its scheduled time and send lag."""

    latencies_ms: list[float]
    lags_ms: list[float]
    own_lags_ms: list[float]
    errors: int
    first_error: str | None
    cpu_s: float = 0.0  # the load process's own CPU time


async def _run_share(
    base_urls: list[str],
    make_request: RequestMaker,
    indices: list[int],
    start: float,
    rate: float,
    slots: int,
) -> LoadShare:
    """Send this process's requests on schedule from `slots` slots, each with its own connection
    (one per API process) and one request in flight: when every slot is busy the next request
    goes out late, which its send lag shows."""
    latencies: list[float] = []
    lags: list[float] = []
    own_lags: list[float] = []
    errors = 0
    first_error: str | None = None
    pending = iter(indices)

    async def slot() -> None:
        nonlocal errors, first_error
        connections = [HttpConnection(base) for base in base_urls]
        try:
            for index in pending:  # shared by the slots: each request is taken by one of them
                scheduled = start + index / rate
                taken = time.monotonic()
                delay = scheduled - taken
                if delay > 0:
                    await asyncio.sleep(delay)
                method, path, kwargs, expected = make_request(index)
                path, headers, body = _encode(kwargs, path)
                # Round robin over the API processes, as a load balancer in front of replicas would.
                connection = connections[index % len(connections)]
                sent = time.monotonic()
                try:
                    status, answer = await asyncio.wait_for(
                        connection.request(method, path, headers, body), 30
                    )
                    if status != expected:
                        errors += 1
                        first_error = first_error or f"{status}: {answer[:200].decode(errors='replace')}"
                except (
                    TimeoutError,
                    OSError,
                    HttpError,
                    ValueError,
                    IndexError,
                    asyncio.IncompleteReadError,
                ) as exc:
                    await connection.close()
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                done = time.monotonic()
                lags.append((sent - scheduled) * 1000)
                own_lags.append((sent - max(taken, scheduled)) * 1000)
                latencies.append((done - scheduled) * 1000)
        finally:
            for connection in connections:
                await connection.close()

    await asyncio.gather(*(slot() for _ in range(slots)))
    return LoadShare(latencies, lags, own_lags, errors, first_error)


def _load_process(
    connection: Connection,
    base_urls: list[str],
    make_request: RequestMaker,
    indices: list[int],
    start: float,
    rate: float,
    slots: int,
) -> None:
    # A collection pausing this process's event loop would show as latency of the route measured.
    gc.disable()
    share = asyncio.run(_run_share(base_urls, make_request, indices, start, rate, slots))
    share.cpu_s = time.process_time()
    connection.send(share)
    connection.close()


def open_loop(
    base_urls: list[str],
    make_request: RequestMaker,
    rate: float,
    duration_s: float,
    clients: int,
    route: str,
    load_processes: int,
) -> RouteFigures:
    """Requests at `rate` for `duration_s` on a fixed schedule (an open loop), from `load_processes`
    processes with `clients` slots in all; each request's latency counts from its scheduled time."""
    total = int(rate * duration_s)
    processes = max(1, min(load_processes, total))
    slots = max(1, clients // processes)
    # Forked (not spawned): the request makers are closures over the seeded ids. CLOCK_MONOTONIC is
    # one clock for every process of the machine, so they share the schedule.
    context = multiprocessing.get_context("fork")
    start = time.monotonic() + 0.5
    children = []
    for number in range(processes):
        receiver, sender = context.Pipe(duplex=False)
        indices = list(range(number, total, processes))
        child = context.Process(
            target=_load_process,
            args=(sender, base_urls, make_request, indices, start, rate, slots),
            daemon=True,
        )
        child.start()
        sender.close()
        children.append((child, receiver))
    shares: list[LoadShare] = []
    for child, receiver in children:
        if not receiver.poll(duration_s + 90):
            raise RuntimeError(f"{route}: a load process sent nothing back")
        shares.append(receiver.recv())
        child.join(10)
    elapsed = time.monotonic() - start
    latencies = [value for share in shares for value in share.latencies_ms]
    lags = [value for share in shares for value in share.lags_ms]
    own_lags = [value for share in shares for value in share.own_lags_ms]
    return RouteFigures(
        route=route,
        sent=total,
        errors=sum(share.errors for share in shares),
        throughput=total / elapsed,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies),
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        lag_max_ms=max(lags),
        own_lag_p99_ms=percentile(own_lags, 99),
        first_error=next((share.first_error for share in shares if share.first_error), None),
        client_cpu_ms=sum(share.cpu_s for share in shares) * 1000 / total,
    )
