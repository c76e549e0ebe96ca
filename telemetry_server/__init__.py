"""telemetry-server: collect, query and manage metrics in real time."""

__version__ = "0.1.0"
