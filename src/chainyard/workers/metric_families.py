"""The server's Prometheus figures gathered from its processes: each worker sends its families
as plain data, and the controller adds them up with its own (counters, histograms and the
gateway's gauges are all sums over the processes that serve) before rendering the text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

Family = list[Any]  # [name, documentation, type, [[sample name, labels, value], ...]]


def export(registry: CollectorRegistry) -> list[Family]:
    return [
        [m.name, m.documentation, m.type, [[s.name, s.labels, s.value] for s in m.samples]]
        for m in registry.collect()
    ]


def merge(parts: Iterable[list[Family]]) -> list[Family]:
    """Families of several processes as one: samples with the same name and labels are added,
    except the `_created` timestamps, of which the earliest stays."""
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for part in parts:
        for name, documentation, kind, samples in part:
            _, _, values = families.setdefault(name, (documentation, kind, {}))
            for sample_name, labels, value in samples:
                key = (sample_name, tuple(sorted(labels.items())))
                if key not in values:
                    values[key] = float(value)
                elif sample_name.endswith("_created"):
                    values[key] = min(values[key], float(value))
                else:
                    values[key] += float(value)
    return [
        [name, documentation, kind, [[s, dict(labels), v] for (s, labels), v in values.items()]]
        for name, (documentation, kind, values) in families.items()
    ]


def render(families: list[Family]) -> bytes:
    metrics = []
    for name, documentation, kind, samples in families:
        metric = Metric(name, documentation, kind)
        for sample_name, labels, value in samples:
            metric.add_sample(sample_name, labels, value)
        metrics.append(metric)

    class _Merged(Collector):
        def collect(self) -> Iterable[Metric]:
            return metrics

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)
