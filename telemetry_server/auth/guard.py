"""AccessGuard: checks the API key of each request against the role its route needs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import NoReturn, TypeVar

from telemetry_server.auth.keys import ApiKey, PresentedKey, Role, parse_authorization, parse_key
from telemetry_server.auth.policy import Access, required_roles
from telemetry_server.config import Settings
from telemetry_server.errors import (
    AuthenticationRequired,
    BadRequest,
    ConfigurationError,
    Forbidden,
    StorageUnavailable,
)
from telemetry_server.http.request import Request
from telemetry_server.http.router import Route
from telemetry_server.ports import KeyStore, StreamTokens
from telemetry_server.services.rate_limit import LocalLimiter

log = logging.getLogger("telemetry_server.auth")
V = TypeVar("V")

# Each worker trusts a key it looked up for this long, so most requests cost no MongoDB round trip; a
# revocation made where Redis cannot carry it (the CLI, Redis down) reaches every worker within this time.
KEY_CACHE_SECONDS = 0.5
# An id that names no key is remembered for longer: ids are random, so none becomes a key later, and a flood
# of made-up ids must not become a flood of queries.
UNKNOWN_KEY_SECONDS = 10.0
# Known keys and unknown ids are kept apart, each dropping its least recently used past its bound, so that
# made-up ids can never push real keys out.
_MAX_KNOWN_KEYS = 10_000
_MAX_UNKNOWN_IDS = 10_000
# A known key waits at most this long for MongoDB to confirm it; past it, the key is served as last seen.
_KNOWN_KEY_WAIT_SECONDS = 0.25
# After MongoDB failed a lookup, an id never seen before is refused at once (503) for this long.
_MONGO_RETRY_SECONDS = 1.0
KEY_ID_SCOPE = "telemetry.key_id"
BOOTSTRAP_KEY_NAME = "bootstrap (BOOTSTRAP_ADMIN_KEY)"


class AccessGuard:
    """Built with the settings; `start` gives it the key store and the routes once the worker has them.

    While MongoDB is unreachable, keys this worker has seen are served as last seen (revocations still reach
    it through Redis, see `on_revoked`), so cached reads go on; ids it has not seen get 503. Requests without a
    usable key are limited per address, before they can cost a MongoDB lookup.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = KEY_CACHE_SECONDS,
    ) -> None:
        self.enabled = settings.auth_enabled
        self._bootstrap = parse_key(settings.bootstrap_admin_key) if settings.bootstrap_admin_key else None
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._keys: KeyStore | None = None
        self._required: dict[str, Role | None] = {}
        self._key_params: dict[str, str] = {}  # route name → the query parameter that may carry its key
        self._token_params: dict[str, str] = {}  # route name → the query parameter that may carry a stream token
        self._tokens: StreamTokens | None = None
        self._known: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()  # id -> (trusted until, key)
        self._unknown: OrderedDict[str, float] = OrderedDict()  # id -> remembered until
        self._lookups: dict[str, asyncio.Task[ApiKey | None]] = {}
        self._mongo_up = True  # as last seen
        self._mongo_retry_at = 0.0
        self._failures = LocalLimiter(settings.auth_failure_rate_per_second, settings.auth_failure_burst, clock)

    def start(self, keys: KeyStore | None, routes: Iterable[Route[Access]], tokens: StreamTokens | None = None) -> None:
        if self.enabled and keys is None:
            raise ConfigurationError("AUTH_ENABLED", "authentication needs a key store (MongoDB)")
        self._keys = keys
        self._tokens = tokens
        routes = list(routes)
        self._required = required_roles(routes)
        self._key_params = {route.name: route.key_param for route in routes if route.key_param is not None}
        self._token_params = {route.name: route.token_param for route in routes if route.token_param is not None}
        if not self.enabled:
            log.warning("authentication is OFF (AUTH_ENABLED=false): every request is allowed every route")

    async def authorize(self, request: Request, route_name: str) -> None:
        """Return when the request may use the route; raise AuthenticationRequired (401) or Forbidden (403), or
        RateLimited (429) once its address has failed too often."""
        if not self.enabled:
            return
        # A route the guard was not told about needs the most: nothing is open by omission.
        required = self._required.get(route_name, Role.ADMIN)
        if required is None:
            return
        address = request.client_id  # no key is known yet: this is the peer's address
        header = _one_authorization(request)
        key_param = self._key_params.get(route_name)
        token_param = self._token_params.get(route_name)
        token = _query_value(request, token_param) if header is None and token_param is not None else None
        if token is not None:
            presented = await self._redeem(token)
        elif header is None and key_param is not None:
            presented = _key_from_query(request, key_param)
        else:
            presented = parse_authorization(header)
        if presented is None:
            self._refuse(address)
        key = await self._find(presented, address)
        # One answer for unknown, revoked and wrong-secret keys: a client learns nothing about which ids exist.
        # A token stands for its key's secret (checked when it was issued); the key is still looked up, so a
        # revocation ends its tokens too.
        if key is None or key.revoked or not (token is not None or key.matches(presented)):
            self._refuse(address)
        request.scope[KEY_ID_SCOPE] = key.key_id  # who is asking, for the rate limiter
        if not key.role.allows(required):
            raise Forbidden(f"this needs a key with the {required} role; this key has the {key.role} role")

    async def _redeem(self, token: str) -> PresentedKey | None:
        key_id = await self._tokens.redeem_token(token) if self._tokens is not None else None
        return None if key_id is None else PresentedKey(key_id, "")

    def on_revoked(self, key_id: str) -> None:
        """A key was revoked (told through Redis): refused from now on, even while MongoDB is unreachable."""
        known = self._known.get(key_id)
        if known is not None and not known[1].revoked:
            until, key = known
            self._known[key_id] = (until, replace(key, revoked_at=datetime.now(UTC)))

    def _refuse(self, address: str) -> NoReturn:
        self._failures.spend(address)  # 429 once the address has failed too often
        raise AuthenticationRequired

    async def _find(self, presented: PresentedKey, address: str) -> ApiKey | None:
        now = self._clock()
        known = self._known.get(presented.key_id)
        if known is not None:
            self._known.move_to_end(presented.key_id)
            if known[0] > now:
                return known[1]
        elif self._unknown.get(presented.key_id, 0.0) > now and presented != self._bootstrap:
            return None
        else:
            self._failures.check(address)  # a new id costs a MongoDB lookup: not for an address that keeps failing
            if not self._mongo_up and now < self._mongo_retry_at:
                raise StorageUnavailable("MongoDB is unreachable (checking an API key)")
        if known is None:
            return await asyncio.shield(self._look_up(presented))
        # A known key never waits long for MongoDB, and not at all while it is known to be down.
        wait = _KNOWN_KEY_WAIT_SECONDS if self._mongo_up else 0.0
        try:
            return await asyncio.wait_for(asyncio.shield(self._look_up(presented)), wait)
        except (TimeoutError, StorageUnavailable):
            self._mongo_failed()
            return known[1]

    def _look_up(self, presented: PresentedKey) -> asyncio.Future[ApiKey | None]:
        """One lookup per id at a time, shared; it runs to its end (and is remembered) even when the request that
        started it has stopped waiting for it."""
        task = self._lookups.get(presented.key_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch(presented))
            self._lookups[presented.key_id] = task
            task.add_done_callback(lambda done: self._lookups.pop(presented.key_id, None))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())  # read: never "lost"
        return task

    async def _fetch(self, presented: PresentedKey) -> ApiKey | None:
        assert self._keys is not None
        try:
            key = await self._keys.get(presented.key_id)
            if key is None and presented == self._bootstrap:
                key = await self._add_bootstrap_key(presented)
        except StorageUnavailable:
            self._mongo_failed()
            raise
        self._mongo_answered()
        self._remember(presented.key_id, key)
        return key

    def _remember(self, key_id: str, key: ApiKey | None) -> None:
        now = self._clock()
        if key is None:
            _put_bounded(self._unknown, key_id, now + UNKNOWN_KEY_SECONDS, _MAX_UNKNOWN_IDS)
            self._known.pop(key_id, None)
        else:
            _put_bounded(self._known, key_id, (now + self._cache_seconds, key), _MAX_KNOWN_KEYS)
            self._unknown.pop(key_id, None)

    def _mongo_failed(self) -> None:
        self._mongo_retry_at = self._clock() + _MONGO_RETRY_SECONDS
        if self._mongo_up:
            log.warning("MongoDB does not answer key lookups: keys seen before are served as last seen until it does")
            self._mongo_up = False

    def _mongo_answered(self) -> None:
        if not self._mongo_up:
            log.warning("MongoDB answers key lookups again")
            self._mongo_up = True

    async def _add_bootstrap_key(self, presented: PresentedKey) -> ApiKey | None:
        """Stored on first use, so that it is listed and can be revoked; once revoked it stays revoked."""
        assert self._keys is not None
        key = ApiKey(presented.key_id, BOOTSTRAP_KEY_NAME, Role.ADMIN, presented.secret_hash, datetime.now(UTC))
        if await self._keys.add_if_absent(key):
            log.warning("stored the BOOTSTRAP_ADMIN_KEY as admin key %s; revoke it once you have your own", key.key_id)
        return await self._keys.get(presented.key_id)


def _one_authorization(request: Request) -> bytes | None:
    """Two keys in one request would leave which one was checked to the order of headers: refused."""
    values = request.header_values(b"authorization")
    if len(values) > 1:
        raise BadRequest(f"send one Authorization header, not {len(values)}")
    return values[0] if values else None


def _key_from_query(request: Request, param: str) -> PresentedKey | None:
    value = _query_value(request, param)
    return parse_key(value) if value is not None else None


def _query_value(request: Request, param: str) -> str | None:
    values = [value for key, value in request.query if key == param]
    if len(values) > 1:
        raise BadRequest(f"send one {param} parameter, not {len(values)}")
    return values[0] if values else None


def _put_bounded(entries: OrderedDict[str, V], key: str, value: V, bound: int) -> None:
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > bound:
        entries.popitem(last=False)
