"""Settings from variables (`load_settings`) and from `.env` files under the real environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from telemetry_server.config import DEFAULTS, Environment, Settings, load_settings, read_environment
from telemetry_server.errors import ConfigurationError

URIS = {"MONGO_URI": "mongodb://db:27017", "REDIS_URI": "redis://cache:6379/0"}


def test_defaults_from_an_empty_environment() -> None:
    settings = load_settings({})

    assert settings == Settings()
    assert settings.environment is Environment.LOCAL
    assert settings.database_name == "telemetry_server_local"
    assert settings.mongo_uri is None
    assert settings.redis_uri is None


def test_every_variable_is_read() -> None:
    settings = load_settings(
        {
            "ENVIRONMENT": "dev",
            "APP_ENV": "eu-1",
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "WORKERS": "2",
            **URIS,
            "MONGO_POOL_SIZE": "8",
            "QUERY_CONCURRENCY": "2",
            "LISTING_CONCURRENCY": "2",
            "MONGO_TIMEOUT_MS": "500",
            "MONGO_WRITE_CONCERN": "1",
            "MONGO_JOURNAL": "false",
            "REDIS_POOL_SIZE": "4",
            "REDIS_TIMEOUT_MS": "100",
            "CACHE_TTL_SECONDS": "0",
            "MAX_BODY_BYTES": "2048",
            "MAX_BATCH_SIZE": "10",
            "DEFAULT_PAGE_SIZE": "5",
            "MAX_PAGE_SIZE": "50",
            "DATA_DIR": "/tmp/ts",
            "LOG_LEVEL": "DEBUG",
        }
    )

    assert settings == Settings(
        environment=Environment.DEV,
        app_env="eu-1",
        host="0.0.0.0",
        port=9000,
        workers=2,
        mongo_uri=URIS["MONGO_URI"],
        redis_uri=URIS["REDIS_URI"],
        mongo_pool_size=8,
        query_concurrency=2,
        listing_concurrency=2,
        mongo_timeout_ms=500,
        mongo_write_concern=1,
        mongo_journal=False,
        redis_pool_size=4,
        redis_timeout_ms=100,
        cache_ttl_seconds=0,
        max_body_bytes=2048,
        max_batch_size=10,
        default_page_size=5,
        max_page_size=50,
        data_dir=Path("/tmp/ts"),
        log_level="debug",
    )
    assert settings.database_name == "telemetry_server_eu-1"


def test_the_bounds_on_caches_and_failed_authentication_are_read() -> None:
    settings = load_settings(
        {
            "CACHE_BACKLOG_MAX": "0",
            "L1_CACHE_BYTES": "1048576",
            "AUTH_FAILURE_RATE_PER_SECOND": "0",
            "AUTH_FAILURE_BURST": "5",
        }
    )
    assert (settings.cache_backlog_max, settings.l1_cache_bytes) == (0, 1 << 20)
    assert (settings.auth_failure_rate_per_second, settings.auth_failure_burst) == (0, 5)
    for variable, value in (("L1_CACHE_BYTES", "100"), ("CACHE_BACKLOG_MAX", "-1"), ("AUTH_FAILURE_BURST", "0")):
        with pytest.raises(ConfigurationError, match=f"^{variable}: "):
            load_settings({variable: value})


def test_app_env_defaults_to_the_environment() -> None:
    assert load_settings({"ENVIRONMENT": "test"}).database_name == "telemetry_server_test"


def test_empty_and_blank_values_count_as_unset() -> None:
    assert load_settings({"PORT": "", "HOST": "  ", "MONGO_URI": ""}) == Settings()


def test_values_are_stripped() -> None:
    assert load_settings({"PORT": " 8081 "}).port == 8081


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENVIRONMENT", "production"),
        ("APP_ENV", "a b"),
        ("APP_ENV", "x" * 33),
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "80.5"),
        ("WORKERS", "0"),
        ("MONGO_URI", "postgres://db"),
        ("MONGO_URI", "mongodb://"),
        ("MONGO_URI", "mongodb://[::1"),
        ("MONGO_URI", "db:27017"),
        ("REDIS_URI", "http://cache"),
        ("REDIS_URI", "redis://user:pw@"),
        ("MONGO_TIMEOUT_MS", "10"),
        ("MONGO_WRITE_CONCERN", "0"),
        ("MONGO_WRITE_CONCERN", "-1"),
        ("MONGO_WRITE_CONCERN", "٣"),
        ("MONGO_WRITE_CONCERN", "all"),
        ("MONGO_JOURNAL", "maybe"),
        ("MAX_BODY_BYTES", "100"),
        ("LOG_LEVEL", "loud"),
        ("DEFAULT_PAGE_SIZE", "5000"),
        ("LISTING_CONCURRENCY", "0"),
        ("MONGO_POOL_SIZE", "23"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({variable: value})

    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert "\n" not in str(caught.value)


def test_environment_is_case_insensitive() -> None:
    assert load_settings({"ENVIRONMENT": "DEV"}).environment is Environment.DEV


def test_a_unix_socket_redis_uri_needs_no_host() -> None:
    assert load_settings({"REDIS_URI": "unix:///run/redis.sock"}).redis_uri == "unix:///run/redis.sock"


@pytest.mark.parametrize("environment", ["staging", "prod"])
@pytest.mark.parametrize("missing", ["MONGO_URI", "REDIS_URI"])
def test_staging_and_prod_need_both_uris(environment: str, missing: str) -> None:
    environ = {"ENVIRONMENT": environment, **URIS}
    del environ[missing]

    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)

    assert caught.value.variable == missing


@pytest.mark.parametrize("environment", ["local", "dev", "test"])
def test_local_environments_allow_embedded_engines(environment: str) -> None:
    assert Environment(environment).allows_embedded_engines
    assert load_settings({"ENVIRONMENT": environment}).mongo_uri is None


def test_writes_are_durable_by_default() -> None:
    assert (DEFAULTS.mongo_write_concern, DEFAULTS.mongo_journal) == ("majority", True)
    assert load_settings({"MONGO_WRITE_CONCERN": "MAJORITY"}).mongo_write_concern == "majority"


def test_default_page_size_may_equal_the_maximum() -> None:
    settings = load_settings({"DEFAULT_PAGE_SIZE": "50", "MAX_PAGE_SIZE": "50"})

    assert settings.default_page_size == settings.max_page_size == 50


def test_defaults_are_consistent() -> None:
    assert DEFAULTS.default_page_size <= DEFAULTS.max_page_size


def test_heavy_reads_and_group_commits_fit_in_the_pool_together() -> None:
    fitting = {"MONGO_POOL_SIZE": "6", "QUERY_CONCURRENCY": "1", "LISTING_CONCURRENCY": "1"}
    assert load_settings({**fitting, "WRITE_BATCH_CONCURRENCY": "4"}).mongo_pool_size == 6

    with pytest.raises(ConfigurationError, match="heavy reads could hold the connections writes need"):
        load_settings({**fitting, "WRITE_BATCH_CONCURRENCY": "5"})


# .env files: `.env.${ENVIRONMENT}`, else `.env`; the real environment wins over both.

EnvFiles = Callable[..., Path]


@pytest.fixture
def env_files(tmp_path: Path) -> EnvFiles:
    """Write `.env` files (name → text) into a fresh project folder; pytest removes it afterwards."""

    def write(**files: str) -> Path:
        for name, text in files.items():
            (tmp_path / name.replace("_", ".")).write_text(text)
        return tmp_path

    return write


def test_the_environment_specific_file_is_chosen(env_files: EnvFiles) -> None:
    root = env_files(_env="PORT=1001\n", _env_test="PORT=1002\n")

    assert read_environment(root, {"ENVIRONMENT": "test"})["PORT"] == "1002"


def test_plain_env_when_the_specific_file_is_missing(env_files: EnvFiles) -> None:
    root = env_files(_env="PORT=1001\n", _env_prod="PORT=1003\n")

    assert read_environment(root, {"ENVIRONMENT": "test"})["PORT"] == "1001"


def test_only_one_file_is_read(env_files: EnvFiles) -> None:
    root = env_files(_env="HOST=from-dot-env\n", _env_test="PORT=1002\n")

    assert "HOST" not in read_environment(root, {"ENVIRONMENT": "test"})


def test_real_environment_wins_over_files(env_files: EnvFiles) -> None:
    root = env_files(_env_dev="PORT=1002\nHOST=file\n")

    merged = read_environment(root, {"ENVIRONMENT": "dev", "PORT": "2000"})

    assert (merged["PORT"], merged["HOST"]) == ("2000", "file")


def test_environment_can_come_from_dot_env(env_files: EnvFiles) -> None:
    root = env_files(_env="ENVIRONMENT=dev\nPORT=1001\n", _env_dev="PORT=1002\n")

    merged = read_environment(root, {})

    assert (merged["ENVIRONMENT"], merged["PORT"]) == ("dev", "1002")


def test_local_when_nothing_says_otherwise(env_files: EnvFiles) -> None:
    root = env_files(_env_local="PORT=1004\n")

    merged = read_environment(root, {})

    assert (merged["ENVIRONMENT"], merged["PORT"]) == ("local", "1004")


def test_no_files_at_all(tmp_path: Path) -> None:
    assert read_environment(tmp_path, {"ENVIRONMENT": "test", "PORT": "1"}) == {"ENVIRONMENT": "test", "PORT": "1"}


def test_files_feed_load_settings(env_files: EnvFiles) -> None:
    root = env_files(_env_prod="MONGO_URI=mongodb://db\nREDIS_URI=redis://cache\nWORKERS=3\n")

    settings = load_settings(read_environment(root, {"ENVIRONMENT": "prod"}))

    assert (settings.environment, settings.workers, settings.mongo_uri) == (Environment.PROD, 3, "mongodb://db")


LLM = {"QUERY_LLM_URL": "http://127.0.0.1:8081/v1", "QUERY_LLM_MODEL": "smollm2"}


def test_the_llm_parser_is_configured_by_url_model_timeout_and_key() -> None:
    settings = load_settings({**LLM, "QUERY_LLM_TIMEOUT_MS": "20000", "QUERY_LLM_API_KEY": "sk-secret"})

    assert settings.query_llm_url == "http://127.0.0.1:8081/v1"
    assert settings.query_llm_model == "smollm2"
    assert settings.query_llm_timeout_ms == 20_000
    assert settings.query_llm_api_key == "sk-secret"
    assert "sk-secret" not in repr(settings)
    assert load_settings({}).query_llm_url is None


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({**LLM, "QUERY_LLM_URL": "ftp://models/v1"}, "QUERY_LLM_URL"),
        ({**LLM, "QUERY_LLM_URL": "http:///v1"}, "QUERY_LLM_URL"),
        ({**LLM, "QUERY_LLM_TIMEOUT_MS": "10"}, "QUERY_LLM_TIMEOUT_MS"),
        ({"QUERY_LLM_URL": LLM["QUERY_LLM_URL"]}, "QUERY_LLM_MODEL"),
        ({**LLM, "QUERY_PARSER": "mypackage.prompts:parse"}, "QUERY_LLM_URL"),
    ],
)
def test_a_bad_llm_setting_names_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)

    assert caught.value.variable == variable


def test_an_otlp_endpoint_turns_tracing_on_and_opentelemetry_variables_turn_it_off() -> None:
    endpoint = "http://collector:4318"
    assert load_settings({}).tracing_endpoint is None
    assert load_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}).tracing_endpoint == endpoint
    traces = "https://collector:4318/v1/traces"
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces}
    assert load_settings(both).tracing_endpoint == traces
    assert load_settings({**both, "OTEL_SDK_DISABLED": "true"}).tracing_endpoint is None
    assert load_settings({**both, "OTEL_TRACES_EXPORTER": "none"}).tracing_endpoint is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
    ],
)
def test_a_tracing_setting_this_server_cannot_honour_is_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", variable: value})


def test_only_staging_and_prod_drain_before_a_stop_by_default() -> None:
    uris = {"MONGO_URI": "mongodb://db", "REDIS_URI": "redis://cache"}

    assert load_settings({"ENVIRONMENT": "test"}).shutdown_drain_seconds == 0
    assert load_settings({"ENVIRONMENT": "prod", **uris}).shutdown_drain_seconds == 5
    assert load_settings({"ENVIRONMENT": "staging", "SHUTDOWN_DRAIN_SECONDS": "0", **uris}).shutdown_drain_seconds == 0
