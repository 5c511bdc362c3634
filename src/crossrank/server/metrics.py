"""Prometheus metrics of one server (`GET /metrics`), in a registry of its own.

Labels are the route and the status code only, values are counts and durations: no query,
document text or key can reach a metric.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_PAIR_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, gate_depth: object) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "crossrank_requests",
            "HTTP requests by route and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.pairs = Counter(
            "crossrank_pairs_scored", "(query, document) pairs scored", registry=self.registry
        )
        self.latency = Histogram(
            "crossrank_request_duration_seconds",
            "Time from a request's arrival to its answer, by route",
            ["endpoint"],
            registry=self.registry,
        )
        self.batch = Histogram(
            "crossrank_request_pairs",
            "Pairs per scoring request",
            buckets=_PAIR_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "crossrank_requests_in_flight",
            "Scoring requests accepted and not finished (queued for or in the model)",
            registry=self.registry,
        )
        self.queue.set_function(gate_depth)  # type: ignore[arg-type]

    def render(self) -> bytes:
        return generate_latest(self.registry)
