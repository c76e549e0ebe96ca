"""The ceiling: a bare ASGI hello-world served by Granian with the same settings as `telemetry-server serve`.

Run as `python -m bench.hello_asgi --port P --workers N`.
"""

from __future__ import annotations

import argparse
from typing import Any

# Module constants, as in Granian's own benchmark app: nothing is built per request.
_BODY = b"Hello, World!"
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(_BODY)).encode())],
}
_RESPONSE = {"type": "http.response.body", "body": _BODY, "more_body": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_RESPONSE)


def main() -> None:
    from granian import Granian

    from telemetry_server.cli import granian_options

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The server's own Granian options, so the ceiling is measured the way the server runs.
    Granian(
        "bench.hello_asgi:app",
        address="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",  # type: ignore[arg-type]
        **granian_options(),
    ).serve()


if __name__ == "__main__":
    main()
