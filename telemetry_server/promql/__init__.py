"""A PromQL subset: parsing, evaluation over a SeriesSource, and Prometheus' result shapes."""
