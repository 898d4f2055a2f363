"""Per-key rate limits: the generic cell rate algorithm (GCRA), a token bucket kept as one number.

For each key the limiter keeps the "theoretical arrival time" (TAT) of the next request. A request
is let through when it does not push the TAT more than `burst` intervals ahead of now, and then
moves it one interval on. One value per key and one round trip per request: in Redis this is one
Lua script (atomic, so several API processes share the count, timed by Redis' own clock); without
Redis (embedded) the same arithmetic runs in the process under a lock.

A limiter that cannot reach Redis lets the request through (and logs it): an outage of the
counter must not become an outage of the API.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis
import structlog

log = structlog.get_logger(__name__)

_GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > tolerance then
  return {0, new_tat - now - tolerance}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> int:
        """Whole seconds, rounded up: a client that waits this long gets through."""
        return max(1, math.ceil(self.retry_after_s))


class RateLimiter(Protocol):
    def hit(self, key: str, per_minute: int, burst: int) -> Decision: ...


def _interval_and_tolerance_us(per_minute: int, burst: int) -> tuple[int, int]:
    interval = 60_000_000 // per_minute
    return interval, interval * burst


class MemoryRateLimiter:
    """GCRA in the process (embedded: one API process, no Redis)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def hit(self, key: str, per_minute: int, burst: int) -> Decision:
        interval, tolerance = _interval_and_tolerance_us(per_minute, burst)
        with self._lock:
            now = self._clock() * 1_000_000
            new_tat = max(self._tat.get(key, now), now) + interval
            if new_tat - now > tolerance:
                return Decision(False, (new_tat - now - tolerance) / 1_000_000)
            self._tat[key] = new_tat
            if len(self._tat) > 100_000:
                # Keys whose TAT has passed hold no state worth keeping.
                self._tat = {name: tat for name, tat in self._tat.items() if tat > now}
            return Decision(True)


class RedisRateLimiter:
    """GCRA in Redis: one EVALSHA per request, shared by every API process."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._script = client.register_script(_GCRA_SCRIPT)
        self._prefix = prefix

    def hit(self, key: str, per_minute: int, burst: int) -> Decision:
        interval, tolerance = _interval_and_tolerance_us(per_minute, burst)
        try:
            allowed, wait_us = self._script(
                keys=[f"{self._prefix}ratelimit:{key}"], args=[interval, tolerance]
            )
        except redis.RedisError as exc:
            log.warning("rate limiter unreachable; letting the request through", error=str(exc))
            return Decision(True)
        return Decision(bool(allowed), int(wait_us) / 1_000_000)
