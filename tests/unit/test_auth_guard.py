"""AccessGuard on an in-memory key store: 401 vs 403, the short key cache, bootstrap, and auth off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from telemetry_server.auth.guard import KEY_ID_SCOPE, AccessGuard
from telemetry_server.auth.keys import ApiKey, Role, generate_key
from telemetry_server.auth.policy import OPEN, Access
from telemetry_server.config import Settings
from telemetry_server.errors import (
    AuthenticationRequired,
    BadRequest,
    ConfigurationError,
    Forbidden,
    NotFound,
    RateLimited,
    StorageUnavailable,
)
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response
from telemetry_server.http.router import Route
from telemetry_server.http.types import Message
from telemetry_server.services.key_service import ApiKeyService
from tests.fakes import InMemoryKeyStore, ManualClock

NOW = datetime(2026, 11, 27, tzinfo=UTC)


async def _handler(_: Request) -> Response:
    return Response()


_DESCRIBED = Operation("a test route", {200: ("OK.", None)})
ROUTES: list[Route[Access]] = [
    Route("/healthz", ("GET",), _handler, "healthz", role=OPEN, operation=_DESCRIBED),
    Route("/metrics", ("GET",), _handler, "list_metrics", role=Role.READ, operation=_DESCRIBED),
    Route("/metrics", ("POST",), _handler, "create_metrics", role=Role.WRITE, operation=_DESCRIBED),
    Route("/admin/keys", ("GET",), _handler, "list_keys", role=Role.ADMIN, operation=_DESCRIBED),
]


def request(authorization: str | None = None, address: str = "192.0.2.1") -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (address, 40000)}
    return Request(scope, receive, 1024)


@pytest.fixture
def store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def guard(store: InMemoryKeyStore, clock: ManualClock) -> AccessGuard:
    guard = AccessGuard(Settings(auth_enabled=True), clock=clock)
    guard.start(store, ROUTES)
    return guard


def make_key(store: InMemoryKeyStore, role: Role) -> str:
    text, _key = asyncio.run(_create(store, role))
    return text


async def _create(store: InMemoryKeyStore, role: Role) -> tuple[str, ApiKey]:
    key, text = await ApiKeyService(store, lambda: NOW).create(role, "test")
    return text, key


def authorize(guard: AccessGuard, route: str, authorization: str | None = None, address: str = "192.0.2.1") -> Request:
    incoming = request(authorization, address)
    asyncio.run(guard.authorize(incoming, route))
    return incoming


def test_open_routes_need_no_key(guard: AccessGuard) -> None:
    authorize(guard, "healthz")


@pytest.mark.parametrize(
    "header", [None, "Bearer nonsense", "Basic dXNlcjpwYXNz", "Token tsk_0123456789abcdef_" + "a" * 43]
)
def test_missing_malformed_and_unknown_keys_are_401(guard: AccessGuard, header: str | None) -> None:
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_metrics", header)


def test_a_known_id_with_the_wrong_secret_is_401(guard: AccessGuard, store: InMemoryKeyStore) -> None:
    text = make_key(store, Role.ADMIN)
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_metrics", f"Bearer {forged}")


def test_roles_decide_403(guard: AccessGuard, store: InMemoryKeyStore) -> None:
    reader, writer, admin = (make_key(store, role) for role in Role)
    authorize(guard, "list_metrics", f"Bearer {reader}")
    with pytest.raises(Forbidden):
        authorize(guard, "create_metrics", f"Bearer {reader}")
    authorize(guard, "create_metrics", f"Token {writer}")
    with pytest.raises(Forbidden):
        authorize(guard, "list_keys", f"Token {writer}")
    authorize(guard, "list_keys", f"Bearer {admin}")


def test_a_route_the_guard_does_not_know_needs_admin(guard: AccessGuard, store: InMemoryKeyStore) -> None:
    with pytest.raises(Forbidden):
        authorize(guard, "added_later", f"Bearer {make_key(store, Role.WRITE)}")


def test_the_key_id_is_left_for_the_rate_limiter(guard: AccessGuard, store: InMemoryKeyStore) -> None:
    text = make_key(store, Role.READ)
    incoming = authorize(guard, "list_metrics", f"Bearer {text}")
    assert incoming.scope[KEY_ID_SCOPE] == text.split("_")[1]
    assert incoming.client_id == text.split("_")[1]


def test_lookups_are_cached_briefly_and_revocation_wins_after(
    guard: AccessGuard, store: InMemoryKeyStore, clock: ManualClock
) -> None:
    text = make_key(store, Role.READ)
    for _ in range(5):
        authorize(guard, "list_metrics", f"Bearer {text}")
    assert store.reads == 1
    asyncio.run(ApiKeyService(store).revoke(text.split("_")[1]))
    clock.now += 0.4
    authorize(guard, "list_metrics", f"Bearer {text}")  # still cached: within the cache time
    clock.now += 0.2
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_metrics", f"Bearer {text}")


def test_key_times_are_kept_to_the_millisecond_as_they_are_stored(store: InMemoryKeyStore) -> None:
    service = ApiKeyService(store, lambda: NOW.replace(microsecond=123_456))
    key, _text = asyncio.run(service.create(Role.READ))
    revoked = asyncio.run(service.revoke(key.key_id))
    assert key.created_at == revoked.revoked_at == NOW.replace(microsecond=123_000)


def test_revoking_an_unknown_key_is_404(store: InMemoryKeyStore) -> None:
    with pytest.raises(NotFound):
        asyncio.run(ApiKeyService(store).revoke("0123456789abcdef"))


def test_the_bootstrap_key_is_stored_on_first_use_and_stays_revoked(store: InMemoryKeyStore) -> None:
    text, presented = generate_key()
    clock = ManualClock()
    guard = AccessGuard(Settings(auth_enabled=True, bootstrap_admin_key=text), clock=clock)
    guard.start(store, ROUTES)
    authorize(guard, "list_keys", f"Bearer {text}")
    assert store.keys[presented.key_id].role is Role.ADMIN
    assert store.keys[presented.key_id].secret_hash == presented.secret_hash
    asyncio.run(ApiKeyService(store).revoke(presented.key_id))
    clock.now += 1
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_keys", f"Bearer {text}")
    # A wrong secret under the bootstrap id stores nothing.
    other = AccessGuard(Settings(auth_enabled=True, bootstrap_admin_key=generate_key()[0]))
    other.start(store, ROUTES)
    before = dict(store.keys)
    with pytest.raises(AuthenticationRequired):
        authorize(other, "list_keys", f"Bearer {text}")
    assert store.keys == before


def test_auth_off_allows_everything_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    guard = AccessGuard(Settings(auth_enabled=False))
    guard.start(None, ROUTES)
    authorize(guard, "list_keys")
    assert "authentication is OFF" in caplog.text


def test_auth_on_without_a_key_store_does_not_start() -> None:
    with pytest.raises(ConfigurationError, match="AUTH_ENABLED"):
        AccessGuard(Settings(auth_enabled=True)).start(None, ROUTES)


def test_two_authorization_headers_are_400(guard: AccessGuard, store: InMemoryKeyStore) -> None:
    key = make_key(store, Role.ADMIN)
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"authorization", b"Bearer nonsense")]

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    twice = Request({"type": "http", "method": "GET", "path": "/", "headers": headers}, receive, 1024)
    with pytest.raises(BadRequest, match="one Authorization header, not 2"):
        asyncio.run(guard.authorize(twice, "list_metrics"))
    asyncio.run(guard.authorize(twice, "healthz"))  # an open route reads no key, so it does not mind


def made_up_key() -> str:
    return f"Bearer {generate_key()[0]}"


def test_made_up_keys_are_limited_per_address_before_they_cost_a_lookup(
    store: InMemoryKeyStore, clock: ManualClock
) -> None:
    guard = AccessGuard(Settings(auth_enabled=True, auth_failure_rate_per_second=10, auth_failure_burst=20), clock)
    guard.start(store, ROUTES)
    legit = make_key(store, Role.READ)
    authorize(guard, "list_metrics", f"Bearer {legit}", address="192.0.2.9")
    statuses, headers = [], []
    for _ in range(100):
        try:
            authorize(guard, "list_metrics", made_up_key(), address="192.0.2.9")
        except AuthenticationRequired:
            statuses.append(401)
        except RateLimited as limited:
            statuses.append(429)
            headers.append(limited.headers())
    assert statuses == [401] * 20 + [429] * 80
    assert all((b"retry-after", b"1") in h for h in headers)
    assert store.reads == 1 + 20, "a refused id was looked up"
    authorize(guard, "list_metrics", f"Bearer {legit}", address="192.0.2.9")  # its own key still works
    authorize(guard, "list_metrics", f"Bearer {make_key(store, Role.READ)}", address="192.0.2.10")  # others too
    with pytest.raises(RateLimited):
        authorize(guard, "list_metrics", None, address="192.0.2.9")  # no key at all counts as a failure
    clock.now += 1  # ten more a second
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_metrics", made_up_key(), address="192.0.2.9")


def test_unknown_ids_are_remembered_apart_from_known_keys(store: InMemoryKeyStore, clock: ManualClock) -> None:
    guard = AccessGuard(Settings(auth_enabled=True, auth_failure_rate_per_second=0), clock)
    guard.start(store, ROUTES)
    legit = make_key(store, Role.READ)
    authorize(guard, "list_metrics", f"Bearer {legit}")
    unknown = made_up_key()
    for _ in range(3):
        with pytest.raises(AuthenticationRequired):
            authorize(guard, "list_metrics", unknown)
    assert store.reads == 2

    async def flood() -> None:
        for _ in range(10_050):  # more made-up ids than either memory holds
            with pytest.raises(AuthenticationRequired):
                await guard.authorize(request(made_up_key()), "list_metrics")

    asyncio.run(flood())
    reads = store.reads
    authorize(guard, "list_metrics", f"Bearer {legit}")
    assert store.reads == reads, "made-up ids pushed a real key out"


def test_known_keys_are_served_while_mongo_is_unreachable(store: InMemoryKeyStore, clock: ManualClock) -> None:
    guard = AccessGuard(Settings(auth_enabled=True), clock)
    guard.start(store, ROUTES)
    reader, revoked = make_key(store, Role.READ), make_key(store, Role.READ)
    authorize(guard, "list_metrics", f"Bearer {reader}")
    authorize(guard, "list_metrics", f"Bearer {revoked}")
    store.failure = StorageUnavailable("MongoDB is unreachable (test)")
    clock.now += 10  # long past the time a key is trusted without asking
    for _ in range(3):
        authorize(guard, "list_metrics", f"Bearer {reader}")
    with pytest.raises(Forbidden):
        authorize(guard, "create_metrics", f"Bearer {reader}")  # as last seen: its role too
    with pytest.raises(StorageUnavailable):
        authorize(guard, "list_metrics", f"Bearer {make_key(store, Role.READ)}")  # never seen: cannot be checked
    guard.on_revoked(revoked.split("_")[1])  # through Redis
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_metrics", f"Bearer {revoked}")
    store.failure = None
    clock.now += 2
    authorize(guard, "list_metrics", f"Bearer {make_key(store, Role.READ)}")  # back: new keys are checked again


def test_a_known_key_does_not_wait_for_a_mongo_that_hangs(store: InMemoryKeyStore, clock: ManualClock) -> None:
    guard = AccessGuard(Settings(auth_enabled=True), clock)
    guard.start(store, ROUTES)
    reader = make_key(store, Role.READ)
    authorize(guard, "list_metrics", f"Bearer {reader}")
    store.hang = True
    clock.now += 10
    authorize(guard, "list_metrics", f"Bearer {reader}")  # after a bounded wait, as last seen
    authorize(guard, "list_metrics", f"Bearer {reader}")  # now known to be down: no wait at all


def test_a_wrong_secret_under_the_bootstrap_id_does_not_lock_the_bootstrap_key_out(store: InMemoryKeyStore) -> None:
    text, _ = generate_key()
    guard = AccessGuard(Settings(auth_enabled=True, bootstrap_admin_key=text))
    guard.start(store, ROUTES)
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationRequired):
        authorize(guard, "list_keys", f"Bearer {forged}")
    authorize(guard, "list_keys", f"Bearer {text}")


class Revocations:
    """Collects what ApiKeyService publishes; `failure` makes publishing fail as Redis down would."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.failure: Exception | None = None

    async def publish(self, key_id: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.published.append(key_id)

    async def listen(self, on_revoked: Callable[[str], None]) -> None:
        raise NotImplementedError


def test_a_revocation_is_stored_then_published(store: InMemoryKeyStore) -> None:
    revocations = Revocations()
    service = ApiKeyService(store, lambda: NOW, revocations)
    first, second = (make_key(store, Role.READ).split("_")[1] for _ in range(2))
    assert asyncio.run(service.revoke(first)).revoked
    assert revocations.published == [first]
    revocations.failure = StorageUnavailable("Redis is unreachable (test)")
    assert asyncio.run(service.revoke(second)).revoked, "a Redis outage failed a revocation already stored"
    assert store.keys[second].revoked
