"""What the async queue and runner measure, on the server's metrics (chainyard/metrics.py):

- `chainyard_async_requests{deployment_id, status}`: QUEUED and IN_PROGRESS requests per
  deployment (the store's figures, read at most once a second, before a scrape);
- `chainyard_async_wait_seconds`: from enqueue to a request's first claim;
- `chainyard_async_outcomes{outcome}`: what became of this server's predict calls (succeeded,
  retried, failed, released, lost to another server) and the expiries it made;
- `chainyard_webhook_deliveries{outcome}`: delivery attempts (delivered, failed_attempt, failed:
  the last attempt, refused: a target the checks refuse).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

from chainyard.async_runner.depths import QueueDepths
from chainyard.async_runner.loop import Runner
from chainyard.metrics import Metrics, counter

# From an idle queue's few milliseconds to a backlog's hours (Baseten keeps a request 72 hours).
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def install(metrics: Metrics, depths: QueueDepths, runner: Runner | None) -> None:
    wait = Histogram(
        "chainyard_async_wait_seconds",
        "Time async requests waited in the queue before their first claim",
        buckets=WAIT_BUCKETS,
        registry=metrics.registry,
    )
    if runner is not None:
        runner.observe_wait = wait.observe

    def live() -> Iterable[Any]:
        family = GaugeMetricFamily(
            "chainyard_async_requests",
            "Async requests queued or in progress, per deployment",
            labels=["deployment_id", "status"],
        )
        for deployment_id, depth in sorted(depths.latest.items()):
            family.add_metric([deployment_id, "QUEUED"], depth.queued)
            family.add_metric([deployment_id, "IN_PROGRESS"], depth.in_progress)
        yield family
        if runner is not None:
            yield counter(
                "chainyard_async_outcomes",
                "Async predict calls of this server, by outcome",
                ["outcome"],
                {(k,): v for k, v in runner.outcomes.items()},
            )
            yield counter(
                "chainyard_webhook_deliveries",
                "Webhook delivery attempts, by outcome",
                ["outcome"],
                {(k,): v for k, v in runner.deliveries.items()},
            )

    metrics.add_source(live)
