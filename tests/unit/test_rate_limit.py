"""RateLimiter: leases from a shared bucket, never more than it holds; a local bucket when it is away. LocalLimiter."""

from __future__ import annotations

import asyncio

import pytest

from telemetry_server.errors import RateLimited, StorageUnavailable
from telemetry_server.services.rate_limit import LocalLimiter, RateLimiter, TokenBucket
from tests.fakes import InMemoryTokenSource, ManualClock


def test_workers_sharing_a_bucket_admit_no_more_than_it_holds() -> None:
    shared = InMemoryTokenSource(tokens=50)  # limit + burst for the period under test
    workers = [RateLimiter(shared, per_second=100, burst=50, clock=ManualClock()) for _ in range(3)]

    async def scenario() -> int:
        admitted = 0
        for _ in range(100):
            for limiter in workers:
                try:
                    await limiter.admit("client")
                    admitted += 1
                except RateLimited:
                    pass
        return admitted

    assert asyncio.run(scenario()) <= 50


def test_a_refusal_says_when_to_retry_and_carries_ratelimit_headers() -> None:
    limiter = RateLimiter(InMemoryTokenSource(tokens=2), per_second=1, burst=2, clock=ManualClock())

    async def scenario() -> None:
        await limiter.admit("c")
        await limiter.admit("c")
        await limiter.admit("c")

    with pytest.raises(RateLimited) as refused:
        asyncio.run(scenario())
    headers = dict(refused.value.headers())
    assert headers[b"retry-after"] == b"1"
    assert headers[b"ratelimit-limit"] == b"1"
    assert headers[b"ratelimit-remaining"] == b"0"
    assert refused.value.status == 429


def test_a_batch_costs_one_token_per_metric() -> None:
    shared = InMemoryTokenSource(tokens=10)
    limiter = RateLimiter(shared, per_second=1, burst=10, clock=ManualClock())

    async def scenario() -> None:
        await limiter.admit("c", 8)
        await limiter.admit("c", 3)

    with pytest.raises(RateLimited):
        asyncio.run(scenario())


def test_leases_are_taken_in_advance_so_most_requests_skip_the_shared_bucket() -> None:
    calls = 0
    shared = InMemoryTokenSource()
    original = shared.take

    async def counting(client: str, want: int) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        return await original(client, want)

    shared.take = counting  # type: ignore[method-assign]
    limiter = RateLimiter(shared, per_second=10_000, burst=20_000, clock=ManualClock())

    async def scenario() -> None:
        for _ in range(1000):
            await limiter.admit("c")

    asyncio.run(scenario())
    assert calls <= 2


def test_without_the_shared_bucket_each_worker_limits_locally() -> None:
    shared = InMemoryTokenSource()
    shared.failure = StorageUnavailable("Redis is unreachable (test)")
    clock = ManualClock()
    limiter = RateLimiter(shared, per_second=5, burst=5, clock=clock)

    async def scenario() -> int:
        admitted = 0
        for _ in range(20):
            try:
                await limiter.admit("c")
                admitted += 1
            except RateLimited:
                pass
        return admitted

    assert asyncio.run(scenario()) == 5


def test_token_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0)
    assert bucket.take(30, now=0) == (20, 0)
    assert bucket.take(30, now=1) == (10, 0)
    assert bucket.take(30, now=100) == (20, 0)


def test_concurrent_requests_wait_for_one_refill_instead_of_each_taking_a_lease() -> None:
    calls = 0
    shared = InMemoryTokenSource(tokens=1000)
    original = shared.take

    async def slow(client: str, want: int) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return await original(client, want)

    shared.take = slow  # type: ignore[method-assign]
    limiter = RateLimiter(shared, per_second=1000, burst=1000, clock=ManualClock())

    async def scenario() -> list[object]:
        return await asyncio.gather(*(limiter.admit("c") for _ in range(40)), return_exceptions=True)

    assert not [r for r in asyncio.run(scenario()) if isinstance(r, BaseException)]
    assert calls == 1


def test_the_local_limiter_checks_without_spending_and_stays_bounded() -> None:
    clock = ManualClock()
    limiter = LocalLimiter(per_second=2, burst=3, clock=clock)
    for _ in range(5):
        limiter.check("192.0.2.1")  # checking spends nothing
    for _ in range(3):
        limiter.spend("192.0.2.1")
    with pytest.raises(RateLimited):
        limiter.check("192.0.2.1")
    with pytest.raises(RateLimited):
        limiter.spend("192.0.2.1")
    limiter.spend("192.0.2.2")  # per client
    clock.now += 0.5
    limiter.spend("192.0.2.1")  # refilled at the rate
    for i in range(25_000):  # more addresses than it keeps: memory stays bounded, the busy one is not forgotten
        limiter.check(f"10.0.{i // 256}.{i % 256}")
        with pytest.raises(RateLimited):
            limiter.check("192.0.2.1")
    assert len(limiter) <= 10_000
    assert not LocalLimiter(per_second=0, burst=1).enabled
