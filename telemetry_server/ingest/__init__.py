"""Foreign ingest protocols (InfluxDB line protocol, Prometheus remote_write, OTLP) decoded into our metrics.

Pure code, free of I/O like `models/`: each codec turns a request body into `MetricInput`s and an
`IngestOutcome`; `naming` holds the one rule that turns foreign names and tags into ours.
"""
