"""Several processes' Prometheus figures as one server's (workers/metric_families.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from chainyard.workers import metric_families


def _process(requests: int, seconds: list[float], in_flight: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("demo_requests", "Requests", ["chainlet_id"], registry=registry)
    counter.labels("c1").inc(requests)
    histogram = Histogram(
        "demo_seconds", "Latency", ["chainlet_id"], buckets=(0.1, 1.0), registry=registry
    )
    for value in seconds:
        histogram.labels("c1").observe(value)
    Gauge("demo_in_flight", "In flight", registry=registry).set(in_flight)
    return registry


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_counters_histograms_and_gauges_are_summed_over_processes() -> None:
    one = metric_families.export(_process(3, [0.05, 0.5], 2))
    two = metric_families.export(_process(4, [5.0], 1))
    merged = _samples(metric_families.render(metric_families.merge([one, two])))
    assert merged[("demo_requests_total", (("chainlet_id", "c1"),))] == 7
    assert merged[("demo_seconds_count", (("chainlet_id", "c1"),))] == 3
    assert merged[("demo_seconds_bucket", (("chainlet_id", "c1"), ("le", "0.1")))] == 1
    assert merged[("demo_seconds_bucket", (("chainlet_id", "c1"), ("le", "1.0")))] == 2
    assert merged[("demo_seconds_bucket", (("chainlet_id", "c1"), ("le", "+Inf")))] == 3
    assert merged[("demo_seconds_sum", (("chainlet_id", "c1"),))] == 5.55
    assert merged[("demo_in_flight", ())] == 3


def test_creation_times_are_not_added_up() -> None:
    one = metric_families.export(_process(1, [], 0))
    two = metric_families.export(_process(1, [], 0))
    created = [s for name, _d, _k, samples in one for s in samples if s[0].endswith("_created")]
    assert created
    merged = metric_families.merge([one, two])
    for name, _doc, _kind, samples in merged:
        for sample_name, _labels, value in samples:
            if sample_name.endswith("_created"):
                assert value < 2 * 10**9, f"{name}: a timestamp, not a sum of two"


def test_families_only_one_process_has_are_kept() -> None:
    registry = CollectorRegistry()
    Gauge("demo_replicas_ready", "Ready", registry=registry).set(4)
    merged = metric_families.merge(
        [metric_families.export(registry), metric_families.export(_process(1, [], 0))]
    )
    assert _samples(metric_families.render(merged))[("demo_replicas_ready", ())] == 4
