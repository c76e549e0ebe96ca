"""RedisTokenSource: the shared token bucket of each client, refilled and spent atomically in one Lua call."""

from __future__ import annotations

from telemetry_server.storage.redis_client import RedisClient, unavailable_when_failing

# KEYS[1]: the bucket. ARGV: rate per second, burst, tokens wanted. Returns {granted, tokens left}.
# Redis's own clock is used, so instances with skewed clocks share one notion of time. A bucket that is not
# there counts as full: it expires once idle long enough to have refilled, and under allkeys-lru eviction
# takes the least recently used keys, not the bucket of a client being limited (touched at every lease).
# One key a call: on a cluster the buckets of different clients spread over the shards.
_TAKE = """
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, math.floor(tokens)}
"""


class RedisTokenSource:
    def __init__(self, client: RedisClient, namespace: str, per_second: int, burst: int) -> None:
        self._script = client.register_script(_TAKE)
        self._namespace = namespace
        self._rate = per_second
        self._burst = burst

    async def take(self, client: str, want: int) -> tuple[int, int]:
        async with unavailable_when_failing("rate limit"):
            granted, left = await self._script(
                keys=[f"{self._namespace}:rl:{client}"], args=[self._rate, self._burst, want]
            )
        return int(granted), int(left)
