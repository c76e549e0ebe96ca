"""The command line: `serve` runs Granian; `services` runs local engines; `keys` manages API keys; `migrate`
converts a database of one document per point into series and buckets; `compact` and `sweep` do the storage
upkeep the server does in the background, once, to the end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from telemetry_server import engines
from telemetry_server.auth.keys import Role, generate_key
from telemetry_server.config import Settings, load_settings, read_environment
from telemetry_server.drain import DRAIN_MARK_VARIABLE, DrainMark, DrainOnTerm
from telemetry_server.errors import ConfigurationError
from telemetry_server.logs import configure_logging

log = logging.getLogger("telemetry_server.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    environ = read_environment(Path.cwd())
    try:
        settings = load_settings(environ)
    except ConfigurationError as exc:
        print(f"telemetry-server: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "serve":
            return serve(replace(settings, **_overrides(args)), environ)
        if args.command == "keys":
            return keys(args, settings)
        if args.command == "migrate":
            return migrate(settings, args.batch, args.drop_old)
        if args.command in ("compact", "sweep"):
            return upkeep(args.command, settings)
        return services(args.action, Path(args.state_dir or settings.data_dir / "services"), environ)
    except engines.EngineError as exc:
        print(f"telemetry-server: {exc}", file=sys.stderr)
        return 1


def granian_options() -> dict[str, Any]:
    """How Granian runs our app; bench/hello_asgi.py runs its ceiling reference with the same."""
    from granian.constants import Interfaces, Loops

    return {
        "interface": Interfaces.ASGI,
        "loop": Loops.uvloop,
        "websockets": True,  # /metrics/ws
        "backlog": 2048,
        "respawn_failed_workers": True,
        "workers_kill_timeout": 30,
    }


def serve(settings: Settings, environ: dict[str, str]) -> int:
    """Run Granian with uvloop and N ASGI workers; start embedded engines for unset URIs in local/dev/test."""
    from granian import Granian
    from granian.http import HTTP1Settings

    with contextlib.ExitStack() as stack:
        if settings.environment.allows_embedded_engines:
            data_dir = settings.data_dir / settings.app_env
            overrides = stack.enter_context(engines.embedded_engines(environ, data_dir, keep_running=True))
            os.environ.update(overrides)  # the workers read their settings from this environment
        log.info(
            "telemetry-server %s on http://%s:%d with %d worker(s), database %s, authentication %s",
            settings.environment,
            settings.host,
            settings.port,
            settings.workers,
            settings.database_name,
            "on" if settings.auth_enabled else "OFF (AUTH_ENABLED=false)",
        )
        server = Granian(
            "telemetry_server.asgi:create_app",
            factory=True,
            address=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,  # type: ignore[arg-type]
            **granian_options(),
            # Slow or oversized request heads are cut off by the server before the app sees them.
            http1_settings=HTTP1Settings(
                header_read_timeout=settings.http_header_timeout_ms,
                max_buffer_size=settings.http_max_buffer_bytes,
            ),
        )
        if settings.shutdown_drain_seconds:
            mark = DrainMark(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemetry-drain-"))) / "mark")
            os.environ[DRAIN_MARK_VARIABLE] = str(mark.path)
            drain = DrainOnTerm(mark, settings.shutdown_drain_seconds, server.signal_handler_interrupt)
            server.on_startup(drain.install)  # startup hooks run after Granian has set its signal handlers
        server.serve()
    return 0


def keys(args: argparse.Namespace, settings: Settings) -> int:
    """`keys generate` prints a new key without storing it (for BOOTSTRAP_ADMIN_KEY); the others use MONGO_URI,
    else the embedded MongoDB-wire engine of a server running here (`scripts/serve.sh`) for this APP_ENV."""
    if args.action == "generate":
        print(generate_key()[0])
        return 0
    with_uri = _with_mongo_uri(settings, "keys")
    if with_uri is None:
        return 2
    return asyncio.run(_keys(args.action, with_uri, Role(args.role), args.name, args.id))


def _with_mongo_uri(settings: Settings, command: str) -> Settings | None:
    """The settings with MONGO_URI, else the running server's embedded engine; None (said why) without either."""
    if settings.mongo_uri is not None:
        return settings
    uri = engines.running_engines(settings.data_dir / settings.app_env).get("MONGO_URI")
    if uri is None:
        print(
            f"telemetry-server: {command} needs MONGO_URI, or a server running from this folder with APP_ENV="
            f"{settings.app_env} and embedded engines (scripts/serve.sh); engines started by `services up` print "
            f"their URIs with `telemetry-server services status`",
            file=sys.stderr,
        )
        return None
    log.info("MONGO_URI is unset: using the running server's embedded engine at %s", uri)
    return replace(settings, mongo_uri=uri)


async def _keys(action: str, settings: Settings, role: Role, name: str, key_id: str | None) -> int:
    from telemetry_server.errors import AppError
    from telemetry_server.services.key_service import ApiKeyService
    from telemetry_server.storage.mongo import create_mongo_client
    from telemetry_server.storage.mongo_keys import MongoKeyStore

    client = create_mongo_client(settings)
    service = ApiKeyService(MongoKeyStore(client, settings.database_name))
    try:
        if action == "create":
            key, text = await service.create(role, name)
            print(f"created {key.role} key {key.key_id} ({key.name or 'no name'}); it is shown only this once:")
            print(text)
        elif action == "list":
            for key in await service.list_keys():
                state = f"revoked {key.to_json()['revoked_at']}" if key.revoked else "active"
                print(f"{key.key_id}  {key.role:<5}  {state:<32}  {key.to_json()['created_at']}  {key.name}")
        else:
            assert key_id is not None
            key = await service.revoke(key_id)
            print(f"revoked key {key.key_id} at {key.to_json()['revoked_at']}")
    except AppError as exc:
        print(f"telemetry-server: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    return 0


def migrate(settings: Settings, chunk_size: int, drop_old: bool) -> int:
    """Convert `metrics` (one document per point) into series, buckets and legacy ids; see README, Upgrading."""
    with_uri = _with_mongo_uri(settings, "migrate")
    if with_uri is None:
        return 2
    return asyncio.run(_migrate(with_uri, chunk_size, drop_old))


async def _migrate(settings: Settings, chunk_size: int, drop_old: bool) -> int:
    from telemetry_server.errors import AppError
    from telemetry_server.storage.migration import MetricsMigration, MigrationRefused, Progress
    from telemetry_server.storage.mongo import create_mongo_client

    def report(progress: Progress) -> None:
        print(f"telemetry-server: {progress.describe()}", file=sys.stderr, flush=True)

    client = create_mongo_client(settings)
    migration = MetricsMigration(client[settings.database_name], chunk_size, report)
    try:
        outcome = await migration.run()
        if outcome.already_done:
            print(f"migration already done: {outcome.migrated:,} points migrated; nothing to do")
        else:
            print(f"migration done: {outcome.migrated_now:,} points migrated now, {outcome.migrated:,} in all")
        if drop_old:
            dropped = await migration.drop_old()
            print(f"dropped `metrics` ({dropped:,} documents, every one migrated)")
    except (AppError, MigrationRefused) as exc:
        print(f"telemetry-server: migration: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    return 0


def upkeep(command: str, settings: Settings) -> int:
    """`compact` or `sweep` in passes, each under the lease the servers' background upkeep takes, until done."""
    if command == "sweep" and settings.retention is None:
        print("telemetry-server: RETENTION is not set: no point expires, nothing to sweep", file=sys.stderr)
        return 0
    with_uri = _with_mongo_uri(settings, command)
    if with_uri is None:
        return 2
    return asyncio.run(_upkeep(command, with_uri))


_LEASE_WAIT_SECONDS = 60
_MAX_PASSES = 100_000


async def _upkeep(command: str, settings: Settings) -> int:
    from telemetry_server.errors import AppError
    from telemetry_server.storage.bucket_upkeep import BucketUpkeep, UpkeepTally
    from telemetry_server.storage.mongo import create_mongo_client

    client = create_mongo_client(settings)
    upkeep = BucketUpkeep.from_settings(client[settings.database_name], settings)
    total = UpkeepTally()
    compact = command == "compact"
    passes = waited = 0
    try:
        while passes < _MAX_PASSES:
            # The first pass reads every bucket again: the servers' passes read only what ended since their last.
            tally = await upkeep.run_leased_pass(compact=compact, sweep=not compact, from_oldest=passes == 0)
            if tally is None:  # a server's pass is running: they are short
                if waited == _LEASE_WAIT_SECONDS:
                    print(f"telemetry-server: the upkeep lease stayed taken for {waited} s", file=sys.stderr)
                    return 1
                waited += 1
                await asyncio.sleep(1)
                continue
            passes += 1
            total.add(tally)
            if tally:
                print(f"pass {passes}: {tally.describe()}", file=sys.stderr)
            elif upkeep.caught_up:
                break
    except AppError as exc:
        print(f"telemetry-server: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    print(f"{command}: {total.describe()}")
    return 0


def services(action: str, state_dir: Path, environ: dict[str, str]) -> int:
    """Detached local engines for development and tests; their pids and URIs are kept in `state_dir`."""
    state_file = state_dir / "services.json"
    state: dict[str, dict[str, str | int]] = json.loads(state_file.read_text()) if state_file.is_file() else {}
    running = {kind: entry for kind, entry in state.items() if engines.alive(int(entry["pid"]))}
    if action == "up":
        for kind in ("mongo", "redis"):
            if kind in running:
                continue
            engine = engines.prepare(kind, state_dir, environ).start()
            running[kind] = {"pid": engine.pid, "uri": engine.uri, "program": engine.program}
        state_file.write_text(json.dumps(running, indent=2))
    elif action == "down":
        for entry in running.values():
            engines.stop_pid(int(entry["pid"]))
        running = {}
        state_file.unlink(missing_ok=True)
    for kind, variable in (("mongo", "MONGO_URI"), ("redis", "REDIS_URI")):
        if kind in running:
            print(f"{variable}={running[kind]['uri']}")
    if action == "status" and not running:
        print("no local services running", file=sys.stderr)
        return 1
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {key: value for key in ("host", "port", "workers") if (value := getattr(args, key)) is not None}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemetry-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP server (Granian, uvloop, ASGI)")
    serve_cmd.add_argument("--host", help="address to bind (default HOST, 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port to bind (default PORT, 8080)")
    serve_cmd.add_argument("--workers", type=int, help="worker processes (default WORKERS, 1)")
    keys_cmd = commands.add_parser(
        "keys", help="API keys: create, list, revoke (in MONGO_URI, else a running server's engine), or generate one"
    )
    key_actions = keys_cmd.add_subparsers(dest="action", required=True)
    create_cmd = key_actions.add_parser("create", help="store a new key and print it, this once")
    create_cmd.add_argument("--role", required=True, choices=("read", "write", "admin"))
    create_cmd.add_argument("--name", default="", help="what the key is for")
    key_actions.add_parser("list", help="every key, revoked ones too (never the secrets)")
    revoke_cmd = key_actions.add_parser("revoke", help="revoke a key: every worker refuses it within a second")
    revoke_cmd.add_argument("id", help="the key's id (the hex part after tsk_)")
    key_actions.add_parser("generate", help="print a new key without storing it, e.g. for BOOTSTRAP_ADMIN_KEY")
    keys_cmd.set_defaults(role="read", name="", id=None)
    migrate_cmd = commands.add_parser(
        "migrate",
        help="convert `metrics` (one document per point) into series and buckets; resumable, safe to rerun",
    )
    migrate_cmd.add_argument("--batch", type=_positive, default=10_000, help="old documents per chunk (default 10000)")
    migrate_cmd.add_argument(
        "--drop-old", action="store_true", help="then drop `metrics`, once its count matches what was migrated"
    )
    commands.add_parser(
        "compact", help="merge small buckets now (as the servers do every UPKEEP_PERIOD_SECONDS), to the end"
    )
    commands.add_parser("sweep", help="delete expired points now (RETENTION), rolling them up (ROLLUPS), to the end")
    services_cmd = commands.add_parser("services", help="local MongoDB-wire and Redis engines, detached")
    services_cmd.add_argument("action", choices=("up", "down", "status"))
    services_cmd.add_argument("--state-dir", help="where pids, logs and data live (default DATA_DIR/services)")
    return parser
