"""Prometheus metrics of one server (GET /metrics). Names start with `chainyard_`.

The parts that measure (gateway, runtime, reconciler, autoscaler) get plain callables or counters
and know nothing of Prometheus; this module turns them into metrics on each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "chainyard_request_duration_seconds",
            "Time from a request reaching the gateway to its answer, per chainlet",
            ["chainlet_id"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cold_start_seconds = Histogram(
            "chainyard_cold_start_seconds",
            "Time from asking for a replica to its first passed health check",
            ["chainlet_id"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.reconciler_tick_seconds = Histogram(
            "chainyard_reconciler_tick_seconds",
            "Duration of one reconciler tick",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def add_source(self, collect: Callable[[], Iterable[Any]]) -> None:
        """A callable yielding metric families, run on each scrape."""

        class _Source(Collector):
            def collect(self) -> Iterable[Any]:
                return collect()

        self.registry.register(_Source())

    def render(self) -> bytes:
        return generate_latest(self.registry)


def gauge(name: str, doc: str, label: str, values: Mapping[str, int | float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def counter(
    name: str, doc: str, labels: list[str], values: Mapping[tuple[str, ...], int | float]
) -> Any:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
