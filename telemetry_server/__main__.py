"""`python -m telemetry_server` runs the command line."""

from telemetry_server.cli import main

raise SystemExit(main())
