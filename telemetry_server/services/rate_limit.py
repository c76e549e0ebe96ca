"""RateLimiter: a limit per client shared by all workers and instances, without a Redis call per request.

The shared bucket lives in Redis (see storage/redis_rate_limit.py). A worker takes tokens from it in
leases of about 50 ms worth of the rate and spends them locally; unspent lease tokens lapse after a
second, so the cluster admits at most rate * time + burst, never more. When Redis cannot be reached each
worker falls back to a local bucket of the same rate and burst (so at most workers * the limit).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from telemetry_server.errors import RateLimited, StorageUnavailable
from telemetry_server.services.single_flight import SingleFlight

log = logging.getLogger("telemetry_server.rate_limit")

_LEASE_SECONDS = 0.05
_LEASE_LIFETIME_SECONDS = 1.0
_MAX_CLIENTS = 10_000


class TokenSource(Protocol):
    async def take(self, client: str, want: int) -> tuple[int, int]:
        """Take up to `want` tokens from the shared bucket; return (granted, tokens left in it)."""
        ...


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
        ]


class TokenBucket:
    """A local bucket: the fallback when the shared one is out of reach."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.updated = rate, burst, float(burst), now

    def take(self, want: int, now: float) -> tuple[int, int]:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        granted = min(want, int(self.tokens))
        self.tokens -= granted
        return granted, int(self.tokens)


@dataclass(slots=True)
class _Lease:
    tokens: int
    expires: float
    shared_left: int = 0  # what the shared bucket held at the last take: remaining = tokens + this


class RateLimiter:
    def __init__(
        self,
        source: TokenSource,
        per_second: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        on_limited: Callable[[], None] = lambda: None,
    ) -> None:
        self.enabled = per_second > 0
        self._source = source
        self._rate = per_second
        self._burst = burst
        self._clock = clock
        self._on_limited = on_limited
        self._lease_size = max(1, math.ceil(per_second * _LEASE_SECONDS)) if per_second else 0
        self._leases: dict[str, _Lease] = {}
        self._local: dict[str, TokenBucket] = {}
        self._shared_down = False
        self._refills: SingleFlight[None] = SingleFlight()

    async def admit(self, client: str, cost: int = 1) -> Quota:
        """Spend `cost` tokens (a batch may spend at most the burst) or raise RateLimited with a retry time."""
        cost = min(cost, self._burst)
        lease = self._lease(client)
        # One refill at a time per client: concurrent requests wait for it instead of each taking a lease.
        # A second round serves a request whose turn came after the first refill was spent.
        for _ in range(2):
            if lease.tokens >= cost:
                break
            await self._refills.do(client, lambda: self._refill(client, lease, cost))
        if lease.tokens < cost:
            self._on_limited()
            retry_after = max(1, math.ceil((cost - lease.tokens) / self._rate))
            raise RateLimited(retry_after, self._quota(0, retry_after).headers())
        lease.tokens -= cost
        return self._quota(lease.tokens + lease.shared_left, 1)

    def _lease(self, client: str) -> _Lease:
        now = self._clock()
        lease = self._leases.get(client)
        if lease is None:
            if len(self._leases) >= _MAX_CLIENTS:
                self._leases = {c: lease for c, lease in self._leases.items() if lease.expires >= now}
                if len(self._local) >= _MAX_CLIENTS:
                    self._local.clear()
            lease = self._leases[client] = _Lease(0, now + _LEASE_LIFETIME_SECONDS)
        elif lease.expires < now:
            lease.tokens = 0  # unspent tokens lapse: the cluster never admits more than the shared bucket
        return lease

    async def _refill(self, client: str, lease: _Lease, cost: int) -> None:
        now = self._clock()
        granted, lease.shared_left = await self._take(client, cost - lease.tokens + self._lease_size, now)
        lease.tokens += granted
        lease.expires = now + _LEASE_LIFETIME_SECONDS

    def _quota(self, remaining: int, reset_seconds: int) -> Quota:
        return Quota(self._rate, remaining, reset_seconds)

    async def _take(self, client: str, want: int, now: float) -> tuple[int, int]:
        try:
            granted = await self._source.take(client, want)
        except StorageUnavailable as exc:
            if not self._shared_down:
                log.warning("rate limits are per worker until Redis answers again (%s)", exc.detail)
                self._shared_down = True
            bucket = self._local.get(client)
            if bucket is None:
                bucket = self._local[client] = TokenBucket(self._rate, self._burst, now)
            return bucket.take(want, now)
        if self._shared_down:
            log.warning("rate limits are shared again")
            self._shared_down = False
            self._local.clear()
        return granted


class LocalLimiter:
    """Token buckets per client in this worker alone, for traffic that must cost neither a Redis nor a MongoDB
    call to refuse: requests without a usable API key, limited per address (auth/guard.py)."""

    def __init__(self, per_second: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = per_second > 0
        self._rate = per_second
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, client: str) -> None:
        """Raise RateLimited when `client` has nothing left, without spending."""
        if self.enabled and self._bucket(client).take(0, self._clock())[1] < 1:
            self._refuse()

    def spend(self, client: str) -> None:
        """Spend one token, or raise RateLimited."""
        if self.enabled and self._bucket(client).take(1, self._clock())[0] < 1:
            self._refuse()

    def __len__(self) -> int:
        """How many clients it keeps a bucket for (at most 10,000)."""
        return len(self._buckets)

    def _bucket(self, client: str) -> TokenBucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            now = self._clock()
            if len(self._buckets) >= _MAX_CLIENTS:
                # A client whose bucket has refilled is no different from a new one: those are forgotten first.
                self._buckets = {c: b for c, b in self._buckets.items() if b.take(0, now)[1] < b.burst}
                if len(self._buckets) >= _MAX_CLIENTS:
                    self._buckets.clear()
            bucket = self._buckets[client] = TokenBucket(self._rate, self._burst, now)
        return bucket

    def _refuse(self) -> NoReturn:
        retry_after = max(1, math.ceil(1 / self._rate))
        raise RateLimited(retry_after, Quota(self._rate, 0, retry_after).headers())
