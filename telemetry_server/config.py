"""Settings: a frozen dataclass built by the pure `load_settings`; `.env` files are read only at the edges."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values

from telemetry_server.auth.keys import parse_key
from telemetry_server.errors import ConfigurationError
from telemetry_server.logs import LogFormat
from telemetry_server.models.retention import RollupSize
from telemetry_server.models.time_range import parse_duration


class Environment(StrEnum):
    LOCAL = "local"
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"

    @property
    def allows_embedded_engines(self) -> bool:
        return self in (Environment.LOCAL, Environment.DEV, Environment.TEST)

    @property
    def requires_auth(self) -> bool:
        return self in (Environment.STAGING, Environment.PROD)

    @property
    def drains_on_stop(self) -> bool:
        """Staging and prod run behind balancers; elsewhere SIGTERM stops at once, as tests and developers expect."""
        return self in (Environment.STAGING, Environment.PROD)


class ReadPreference(StrEnum):
    """Where listings read, as MONGO_READ_PREFERENCE spells it (any case); the names are pymongo's."""

    PRIMARY = "primary"
    PRIMARY_PREFERRED = "primarypreferred"
    SECONDARY = "secondary"
    SECONDARY_PREFERRED = "secondarypreferred"
    NEAREST = "nearest"


@dataclass(frozen=True)
class Settings:
    environment: Environment = Environment.LOCAL
    app_env: str = "local"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    mongo_uri: str | None = None
    redis_uri: str | None = None
    mongo_pool_size: int = 32
    mongo_timeout_ms: int = 2000
    # A write is acknowledged (201) only once a majority has it in its journal: see README, Reliability.
    mongo_write_concern: int | str = "majority"
    mongo_journal: bool = True
    # Where listings and queries read (writes always go to the primary): see docs/scaling.md.
    mongo_read_preference: ReadPreference = ReadPreference.PRIMARY
    redis_pool_size: int = 32
    redis_timeout_ms: int = 250
    cache_ttl_seconds: int = 60
    cache_backlog_max: int = 10_000
    max_body_bytes: int = 1_048_576
    max_batch_size: int = 10_000
    # Agents' protocols (/write, /api/v1/write, /v1/metrics) send bigger batches than the JSON API: Telegraf and
    # TSBS send 5,000 lines of up to 10 fields. Bounded apart, before and after decompression, and in points.
    ingest_max_body_bytes: int = 16 << 20
    ingest_max_points: int = 100_000
    default_page_size: int = 100
    max_page_size: int = 1000
    # Every worker keeps the series (name + tags) in memory to resolve filters: this bounds it.
    series_max: int = 1_000_000
    max_json_depth: int = 32
    auth_enabled: bool = False
    bootstrap_admin_key: str | None = field(default=None, repr=False)
    http_header_timeout_ms: int = 10_000
    http_max_buffer_bytes: int = 65_536
    http_body_timeout_ms: int = 30_000
    data_dir: Path = Path(".data")
    log_level: str = "info"
    l1_cache_ttl_ms: int = 5000
    l1_cache_entries: int = 10_000
    # With the series index (~50 MB at 100k series) and a worker's own ~65 MB, this keeps a worker within the
    # 150 MB RSS budget (bench.series_memory: 151.4 MB with 32 MiB, over it).
    l1_cache_bytes: int = 24 << 20
    write_batch_delay_ms: int = 0
    write_batch_max: int = 1000
    write_batch_concurrency: int = 4
    write_chunk_size: int = 1000
    rate_limit_per_second: int = 20_000
    rate_limit_burst: int = 40_000
    auth_failure_rate_per_second: int = 10
    auth_failure_burst: int = 100
    query_concurrency: int = 4
    listing_concurrency: int = 16
    query_timeout_ms: int = 5000
    query_parser: str | None = None
    query_llm_url: str | None = None
    query_llm_model: str | None = None
    query_llm_timeout_ms: int = 5000
    query_llm_api_key: str | None = field(default=None, repr=False)
    retention: timedelta | None = None
    rollups: tuple[RollupSize, ...] = ()
    rollup_retention: timedelta | None = None
    upkeep_period_seconds: int = 60
    # The Prometheus query API (docs/promql.md, "Limits"): what one PromQL query may touch, and for how long.
    promql_max_series: int = 10_000
    promql_max_points: int = 5_000_000
    promql_timeout: timedelta = timedelta(seconds=30)
    # Observability: the lines' format, and where spans go (OTLP/HTTP; None: tracing off, and free).
    log_format: LogFormat = LogFormat.TEXT
    tracing_endpoint: str | None = None
    # Behind a load balancer: how long SIGTERM leaves the server serving with /readyz at 503 (see drain.py).
    shutdown_drain_seconds: int = 0
    # Live streams (docs/streams.md): the shared change log's length in entries (one per write or batch chunk),
    # caps on subscribers, each subscriber's queue in events and what happens past it, keep-alives and tokens.
    stream_max_len: int = 50_000
    stream_max_per_worker: int = 2000
    stream_max_per_key: int = 100
    stream_queue_max: int = 10_000
    stream_lag_policy: str = "skip"
    stream_keepalive_seconds: int = 15
    stream_retry_ms: int = 2000
    stream_token_seconds: int = 60

    @property
    def database_name(self) -> str:
        return f"telemetry_server_{self.app_env}"


DEFAULTS = Settings()
# Two failed probes of a balancer checking every second, with a margin: see README, Many instances.
_DRAIN_SECONDS = 5
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_PLUGIN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build settings from a flat mapping of variables; raise ConfigurationError naming a bad one."""
    env = _Reader(environ)
    environment = env.choice("ENVIRONMENT", [e.value for e in Environment], Environment.LOCAL.value)
    settings = Settings(
        environment=Environment(environment),
        app_env=env.identifier("APP_ENV", environment),
        host=env.text("HOST", DEFAULTS.host),
        port=env.integer("PORT", DEFAULTS.port, 1, 65535),
        workers=env.integer("WORKERS", DEFAULTS.workers, 1, 64),
        mongo_uri=env.uri("MONGO_URI", ("mongodb", "mongodb+srv")),
        redis_uri=env.redis_uri("REDIS_URI"),
        mongo_pool_size=env.integer("MONGO_POOL_SIZE", DEFAULTS.mongo_pool_size, 1, 1000),
        mongo_timeout_ms=env.integer("MONGO_TIMEOUT_MS", DEFAULTS.mongo_timeout_ms, 50, 60_000),
        mongo_write_concern=env.write_concern("MONGO_WRITE_CONCERN", DEFAULTS.mongo_write_concern),
        mongo_read_preference=ReadPreference(
            env.choice("MONGO_READ_PREFERENCE", [p.value for p in ReadPreference], DEFAULTS.mongo_read_preference)
        ),
        mongo_journal=env.boolean("MONGO_JOURNAL", DEFAULTS.mongo_journal),
        redis_pool_size=env.integer("REDIS_POOL_SIZE", DEFAULTS.redis_pool_size, 1, 1000),
        redis_timeout_ms=env.integer("REDIS_TIMEOUT_MS", DEFAULTS.redis_timeout_ms, 10, 60_000),
        cache_ttl_seconds=env.integer("CACHE_TTL_SECONDS", DEFAULTS.cache_ttl_seconds, 0, 86_400),
        cache_backlog_max=env.integer("CACHE_BACKLOG_MAX", DEFAULTS.cache_backlog_max, 0, 10_000_000),
        max_body_bytes=env.integer("MAX_BODY_BYTES", DEFAULTS.max_body_bytes, 1024, 256 * 1024 * 1024),
        max_batch_size=env.integer("MAX_BATCH_SIZE", DEFAULTS.max_batch_size, 1, 1_000_000),
        ingest_max_body_bytes=env.integer(
            "INGEST_MAX_BODY_BYTES", DEFAULTS.ingest_max_body_bytes, 1024, 256 * 1024 * 1024
        ),
        ingest_max_points=env.integer("INGEST_MAX_POINTS", DEFAULTS.ingest_max_points, 1, 10_000_000),
        default_page_size=env.integer("DEFAULT_PAGE_SIZE", DEFAULTS.default_page_size, 1, 100_000),
        max_page_size=env.integer("MAX_PAGE_SIZE", DEFAULTS.max_page_size, 1, 100_000),
        series_max=env.integer("SERIES_MAX", DEFAULTS.series_max, 1, 2**32 - 1),
        max_json_depth=env.integer("MAX_JSON_DEPTH", DEFAULTS.max_json_depth, 4, 512),
        auth_enabled=env.boolean("AUTH_ENABLED", Environment(environment).requires_auth),
        bootstrap_admin_key=env.api_key("BOOTSTRAP_ADMIN_KEY"),
        http_header_timeout_ms=env.integer("HTTP_HEADER_TIMEOUT_MS", DEFAULTS.http_header_timeout_ms, 100, 300_000),
        http_body_timeout_ms=env.integer("HTTP_BODY_TIMEOUT_MS", DEFAULTS.http_body_timeout_ms, 100, 600_000),
        http_max_buffer_bytes=env.integer("HTTP_MAX_BUFFER_BYTES", DEFAULTS.http_max_buffer_bytes, 8192, 16 << 20),
        data_dir=Path(env.text("DATA_DIR", str(DEFAULTS.data_dir))),
        log_level=env.choice("LOG_LEVEL", _LOG_LEVELS, DEFAULTS.log_level),
        l1_cache_ttl_ms=env.integer("L1_CACHE_TTL_MS", DEFAULTS.l1_cache_ttl_ms, 0, 3_600_000),
        l1_cache_entries=env.integer("L1_CACHE_ENTRIES", DEFAULTS.l1_cache_entries, 1, 10_000_000),
        l1_cache_bytes=env.integer("L1_CACHE_BYTES", DEFAULTS.l1_cache_bytes, 1024, 1 << 40),
        write_batch_delay_ms=env.integer("WRITE_BATCH_DELAY_MS", DEFAULTS.write_batch_delay_ms, 0, 1000),
        write_batch_max=env.integer("WRITE_BATCH_MAX", DEFAULTS.write_batch_max, 1, 100_000),
        write_batch_concurrency=env.integer("WRITE_BATCH_CONCURRENCY", DEFAULTS.write_batch_concurrency, 1, 64),
        write_chunk_size=env.integer("WRITE_CHUNK_SIZE", DEFAULTS.write_chunk_size, 1, 100_000),
        rate_limit_per_second=env.integer("RATE_LIMIT_PER_SECOND", DEFAULTS.rate_limit_per_second, 0, 10**9),
        rate_limit_burst=env.integer("RATE_LIMIT_BURST", DEFAULTS.rate_limit_burst, 1, 10**9),
        auth_failure_rate_per_second=env.integer(
            "AUTH_FAILURE_RATE_PER_SECOND", DEFAULTS.auth_failure_rate_per_second, 0, 10**6
        ),
        auth_failure_burst=env.integer("AUTH_FAILURE_BURST", DEFAULTS.auth_failure_burst, 1, 10**6),
        query_concurrency=env.integer("QUERY_CONCURRENCY", DEFAULTS.query_concurrency, 1, 256),
        listing_concurrency=env.integer("LISTING_CONCURRENCY", DEFAULTS.listing_concurrency, 1, 256),
        query_timeout_ms=env.integer("QUERY_TIMEOUT_MS", DEFAULTS.query_timeout_ms, 100, 600_000),
        query_parser=env.plugin("QUERY_PARSER"),
        query_llm_url=env.uri("QUERY_LLM_URL", ("http", "https")),
        query_llm_model=env.text("QUERY_LLM_MODEL", "") or None,
        query_llm_timeout_ms=env.integer("QUERY_LLM_TIMEOUT_MS", DEFAULTS.query_llm_timeout_ms, 100, 600_000),
        query_llm_api_key=env.text("QUERY_LLM_API_KEY", "") or None,
        retention=env.duration("RETENTION"),
        rollups=env.rollup_sizes("ROLLUPS"),
        rollup_retention=env.duration("ROLLUP_RETENTION"),
        upkeep_period_seconds=env.integer("UPKEEP_PERIOD_SECONDS", DEFAULTS.upkeep_period_seconds, 0, 86_400),
        promql_max_series=env.integer("PROMQL_MAX_SERIES", DEFAULTS.promql_max_series, 1, 10_000_000),
        promql_max_points=env.integer("PROMQL_MAX_POINTS", DEFAULTS.promql_max_points, 1, 10**10),
        promql_timeout=env.duration("PROMQL_TIMEOUT") or DEFAULTS.promql_timeout,
        log_format=LogFormat(env.choice("LOG_FORMAT", [f.value for f in LogFormat], DEFAULTS.log_format.value)),
        tracing_endpoint=_tracing_endpoint(env),
        shutdown_drain_seconds=env.integer(
            "SHUTDOWN_DRAIN_SECONDS", _DRAIN_SECONDS if Environment(environment).drains_on_stop else 0, 0, 300
        ),
        stream_max_len=env.integer("STREAM_MAX_LEN", DEFAULTS.stream_max_len, 100, 10_000_000),
        stream_max_per_worker=env.integer("STREAM_MAX_PER_WORKER", DEFAULTS.stream_max_per_worker, 0, 1_000_000),
        stream_max_per_key=env.integer("STREAM_MAX_PER_KEY", DEFAULTS.stream_max_per_key, 1, 1_000_000),
        stream_queue_max=env.integer("STREAM_QUEUE_MAX", DEFAULTS.stream_queue_max, 1, 10_000_000),
        stream_lag_policy=env.choice("STREAM_LAG_POLICY", ("skip", "disconnect"), DEFAULTS.stream_lag_policy),
        stream_keepalive_seconds=env.integer("STREAM_KEEPALIVE", DEFAULTS.stream_keepalive_seconds, 1, 3600),
        stream_retry_ms=env.integer("STREAM_RETRY_MS", DEFAULTS.stream_retry_ms, 100, 600_000),
        stream_token_seconds=env.integer("STREAM_TOKEN_SECONDS", DEFAULTS.stream_token_seconds, 5, 86_400),
    )
    if settings.default_page_size > settings.max_page_size:
        raise ConfigurationError("DEFAULT_PAGE_SIZE", "must not exceed MAX_PAGE_SIZE")
    # Heavy reads wait for a slot of their own before they take a pooled connection; with the group commits'
    # slots they fit in the pool, so they can never hold every connection while a write waits for one.
    reserved = settings.query_concurrency + settings.listing_concurrency + settings.write_batch_concurrency
    if reserved > settings.mongo_pool_size:
        raise ConfigurationError(
            "MONGO_POOL_SIZE",
            f"{settings.mongo_pool_size} is less than QUERY_CONCURRENCY + LISTING_CONCURRENCY + "
            f"WRITE_BATCH_CONCURRENCY ({reserved}): heavy reads could hold the connections writes need",
        )
    if settings.environment.requires_auth and not settings.auth_enabled:
        raise ConfigurationError("AUTH_ENABLED", f"authentication cannot be turned off when ENVIRONMENT={environment}")
    if settings.query_llm_url is not None:
        if settings.query_parser is not None:
            raise ConfigurationError(
                "QUERY_LLM_URL", "cannot be combined with QUERY_PARSER: one parser backs up the rules"
            )
        if settings.query_llm_model is None:
            raise ConfigurationError("QUERY_LLM_MODEL", "is required with QUERY_LLM_URL (the model the API serves)")
    _check_retention(settings)
    if not settings.environment.allows_embedded_engines:
        for name, value in (("MONGO_URI", settings.mongo_uri), ("REDIS_URI", settings.redis_uri)):
            if value is None:
                raise ConfigurationError(name, f"is required when ENVIRONMENT={environment}")
    return settings


def _check_retention(settings: Settings) -> None:
    # Rollups are written by the sweeper from the points it drops: without RETENTION there would be none.
    if settings.rollups and settings.retention is None:
        raise ConfigurationError("ROLLUPS", "needs RETENTION: rollups keep summaries of the points it drops")
    if settings.rollup_retention is not None:
        if not settings.rollups:
            raise ConfigurationError("ROLLUP_RETENTION", "needs ROLLUPS (which rollups to keep)")
        assert settings.retention is not None
        if settings.rollup_retention <= settings.retention:
            raise ConfigurationError("ROLLUP_RETENTION", "must be longer than RETENTION, or rollups answer nothing")


def _tracing_endpoint(env: _Reader) -> str | None:
    """OpenTelemetry's own variables decide: an OTLP endpoint turns tracing on, OTEL_SDK_DISABLED or
    OTEL_TRACES_EXPORTER=none turn it off. The SDK reads the rest of its OTEL_* variables itself."""
    exporter = env.choice("OTEL_TRACES_EXPORTER", ["otlp", "none"], "otlp")
    env.choice("OTEL_EXPORTER_OTLP_PROTOCOL", ["http/protobuf"], "http/protobuf")  # the one exporter installed
    if env.boolean("OTEL_SDK_DISABLED", False) or exporter == "none":
        return None
    return env.uri("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ("http", "https")) or env.uri(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ("http", "https")
    )


def read_environment(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge `.env.${ENVIRONMENT}` (or `.env` when that file is missing) under the real environment."""
    real = dict(os.environ if environ is None else environ)
    environment = real.get("ENVIRONMENT") or _peek_environment(root / ".env") or Environment.LOCAL.value
    specific = root / f".env.{environment}"
    chosen = specific if specific.is_file() else root / ".env"
    from_file = {k: v for k, v in dotenv_values(chosen).items() if v is not None} if chosen.is_file() else {}
    return {"ENVIRONMENT": environment, **from_file, **real}


def _peek_environment(path: Path) -> str | None:
    return dotenv_values(path).get("ENVIRONMENT") if path.is_file() else None


class _Reader:
    """Typed access to string variables; empty strings count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _get(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self._get(name) or default

    def identifier(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not value.replace("_", "").replace("-", "").isalnum() or len(value) > 32:
            raise ConfigurationError(name, f"{value!r} must be letters, digits, '_' or '-' (at most 32)")
        return value

    def choice(self, name: str, allowed: tuple[str, ...] | list[str], default: str) -> str:
        value = (self._get(name) or default).lower()
        if value not in allowed:
            raise ConfigurationError(name, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(name, f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ConfigurationError(name, f"{value} is outside {low}..{high}")
        return value

    def write_concern(self, name: str, default: int | str) -> int | str:
        """`majority` or a number of nodes; never 0, which would acknowledge writes nobody confirmed."""
        raw = self._get(name)
        if raw is None:
            return default
        if raw.lower() == "majority":
            return "majority"
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 50:
            return int(raw)
        raise ConfigurationError(name, f"{raw[:40]!r} must be majority or a number of nodes from 1 to 50")

    def plugin(self, name: str) -> str | None:
        """`package.module:callable`, imported at startup (never fetched); None when unset."""
        raw = self._get(name)
        if raw is not None and not _PLUGIN.match(raw):
            raise ConfigurationError(name, f"{raw[:100]!r} must be module:callable, e.g. mypackage.prompts:parse")
        return raw

    def uri(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self._get(name)
        if raw is None:
            return None
        try:
            parts = urlsplit(raw)
        except ValueError as exc:
            raise ConfigurationError(name, f"malformed URI ({exc})") from None
        if parts.scheme not in schemes:
            raise ConfigurationError(name, f"scheme must be one of {', '.join(schemes)}")
        if parts.scheme != "unix" and not parts.netloc.rpartition("@")[2]:
            raise ConfigurationError(name, "the URI names no host")
        return raw

    def redis_uri(self, name: str) -> str | None:
        """A standalone Redis (`redis`, `rediss`, `unix`), a cluster or a Sentinel-managed primary (RedisTarget)."""
        raw = self.uri(name, tuple(_REDIS_SCHEMES))
        if raw is not None:
            try:
                parse_redis_uri(raw)
            except ValueError as exc:
                raise ConfigurationError(name, str(exc)) from None
        return raw

    def duration(self, name: str) -> timedelta | None:
        """`30d`, `12h`, `2w` (models/time_range.py); unset, empty or `off` is None."""
        raw = self._get(name)
        if raw is None or raw.lower() == "off":
            return None
        duration = parse_duration(raw)
        if duration is None:
            raise ConfigurationError(name, f"{raw[:40]!r} is not a duration such as 30d, 12h or 2w")
        return duration

    def rollup_sizes(self, name: str) -> tuple[RollupSize, ...]:
        """A comma-separated list of rollup intervals (`1m,1h`); unset, empty or `off` is none."""
        raw = self._get(name)
        if raw is None or raw.lower() == "off":
            return ()
        sizes: list[RollupSize] = []
        for part in raw.split(","):
            text = part.strip()
            if text not in RollupSize.__members__.values():
                allowed = ", ".join(size.value for size in RollupSize)
                raise ConfigurationError(name, f"{text[:40]!r} is not a rollup interval ({allowed})")
            if RollupSize(text) not in sizes:
                sizes.append(RollupSize(text))
        return tuple(sorted(sizes, key=lambda size: size.millis))

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._get(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(name, f"{raw!r} is not true or false")

    def api_key(self, name: str) -> str | None:
        raw = self._get(name)
        if raw is not None and parse_key(raw) is None:
            # The value is a secret: the message never repeats it.
            raise ConfigurationError(
                name, "is not a key in this server's format (make one with `telemetry-server keys generate`)"
            )
        return raw


# Redis deployments: REDIS_URI's scheme says which, so one variable names any of them.


class RedisTopology(StrEnum):
    STANDALONE = "standalone"
    CLUSTER = "cluster"  # any node is enough: the client discovers the rest
    SENTINEL = "sentinel"  # the sentinels name the primary of `service`, and name the next one after a failover


_REDIS_SCHEMES = {
    "redis": RedisTopology.STANDALONE,
    "rediss": RedisTopology.STANDALONE,
    "unix": RedisTopology.STANDALONE,
    "redis+cluster": RedisTopology.CLUSTER,
    "rediss+cluster": RedisTopology.CLUSTER,
    "redis+sentinel": RedisTopology.SENTINEL,
    "rediss+sentinel": RedisTopology.SENTINEL,
}
_DEFAULT_PORTS = {RedisTopology.CLUSTER: 6379, RedisTopology.SENTINEL: 26379}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a cluster or Sentinel REDIS_URI names; a standalone one is handed to redis-py as it is."""

    topology: RedisTopology
    nodes: tuple[tuple[str, int], ...]  # the seed nodes of a cluster, or the sentinels
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    service: str | None = None  # the primary's name at the sentinels
    db: int = 0


def parse_redis_uri(uri: str) -> RedisTarget:
    """`redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster` with TLS), or
    `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`; the credentials are those of the
    Redis nodes. ValueError names what is wrong (never the password)."""
    scheme, _, rest = uri.partition("://")
    topology = _REDIS_SCHEMES.get(scheme)
    if topology is None:
        raise ValueError(f"scheme must be one of {', '.join(_REDIS_SCHEMES)}")
    if topology is RedisTopology.STANDALONE:
        return RedisTarget(topology, ())
    if "?" in rest or "#" in rest:
        raise ValueError("a cluster or sentinel URI takes no options: use the REDIS_* settings")
    location, _, path = rest.partition("/")
    credentials, _, hosts = location.rpartition("@")
    username, password = _credentials(credentials)
    nodes = tuple(_address(part, _DEFAULT_PORTS[topology]) for part in hosts.split(","))
    segments = [segment for segment in path.split("/") if segment]
    service, db = None, 0
    if topology is RedisTopology.CLUSTER and segments:
        raise ValueError("a cluster has no database or service to name after its nodes")
    if topology is RedisTopology.SENTINEL:
        if not segments or len(segments) > 2:
            raise ValueError("a sentinel URI ends with the primary's name, e.g. redis+sentinel://host:26379/mymaster")
        service = unquote(segments[0])
        if len(segments) == 2:
            if not segments[1].isdigit():
                raise ValueError(f"database {segments[1][:20]!r} is not a number")
            db = int(segments[1])
    return RedisTarget(topology, nodes, scheme.startswith("rediss"), username, password, service, db)


def _credentials(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    user, colon, password = text.partition(":")
    return unquote(user) or None, unquote(password) if colon else None


def _address(text: str, default_port: int) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):  # [IPv6]:port
        host, _, after = text[1:].partition("]")
        port = after.removeprefix(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host:
        raise ValueError(f"{text[:60]!r} names no host")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{text[:60]!r} has no valid port")
    return host, int(port) if port else default_port
