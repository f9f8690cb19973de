"""What a wait has seen so far and what it means, shared by the sync and the async client.

The clients only fetch and sleep; deciding whether a promotion is done, still running or over
for good happens here, in one place.
"""

from __future__ import annotations

import enum
import time

from chainyard.schemas import ChainDeploymentV1, ChainEnvironmentV1, DeploymentStatusV1
from chainyard.sdk.errors import (
    DeploymentFailed,
    PromotionFailed,
    PromotionTimeout,
    RateLimited,
    WaitTimeout,
)

FAILED_STATUSES = frozenset(
    {
        DeploymentStatusV1.BUILD_FAILED,
        DeploymentStatusV1.BUILD_STOPPED,
        DeploymentStatusV1.DEPLOY_FAILED,
        DeploymentStatusV1.FAILED,
    }
)
# Statuses a deployment can sit in for good without anyone acting: waiting on them is pointless.
AT_REST_STATUSES = FAILED_STATUSES | {DeploymentStatusV1.INACTIVE}

DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_WAIT_TIMEOUT = 600.0


def backoff(exc: RateLimited, poll_interval: float) -> float:
    return max(poll_interval, exc.retry_after or 0.0)


class Step(enum.Enum):
    DONE = "done"
    PENDING = "pending"
    # Neither the candidate nor the current deployment: the promotion ended without it.
    LEFT = "left"


class Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def passed(self) -> bool:
        return self._end is not None and time.monotonic() >= self._end

    def sleep_for(self, interval: float) -> float:
        if self._end is None:
            return interval
        return max(0.0, min(interval, self._end - time.monotonic()))


class PromotionWatch:
    """Follows one promotion into `environment` of `chain_id`.

    Without a `deployment_id`, the first environment seen names it: its candidate, or, when no
    promotion is running, its current deployment (then there is nothing to wait for).
    """

    def __init__(
        self, chain_id: str, environment: str, deployment_id: str | None, timeout: float | None
    ) -> None:
        self.chain_id = chain_id
        self.environment = environment
        self.deployment_id = deployment_id
        self.deadline = Deadline(timeout)
        self.last_status: str | None = None

    def observe(self, env: ChainEnvironmentV1) -> Step:
        current, candidate = env.current_deployment, env.candidate_deployment
        if self.deployment_id is None:
            chosen = candidate or current
            if chosen is None:
                raise PromotionFailed(
                    f"environment '{self.environment}' has no deployment and no promotion in "
                    "progress",
                    chain_id=self.chain_id,
                    deployment_id=None,
                    status=None,
                    environment=self.environment,
                )
            self.deployment_id = chosen.id
        if candidate is not None and candidate.id == self.deployment_id:
            self.last_status = candidate.status.value
            return Step.PENDING
        if current is not None and current.id == self.deployment_id:
            self.last_status = current.status.value
            return Step.DONE
        return Step.LEFT

    def left(self, deployment: ChainDeploymentV1 | None) -> PromotionFailed:
        """The error for a deployment that is no longer being promoted (None: it is gone)."""
        status = deployment.status.value if deployment is not None else None
        if deployment is None:
            why = "no longer exists"
        elif deployment.status in FAILED_STATUSES:
            why = f"ended {status}"
        else:
            why = f"is no longer being promoted (status {status})"
        return PromotionFailed(
            f"deployment '{self.deployment_id}' {why}; environment '{self.environment}' keeps "
            "what it served",
            chain_id=self.chain_id,
            deployment_id=self.deployment_id,
            status=status,
            environment=self.environment,
        )

    def timed_out(self) -> PromotionTimeout:
        return PromotionTimeout(
            f"deployment '{self.deployment_id or '(the candidate)'}' is still "
            f"{self.last_status or 'pending'} in "
            f"environment '{self.environment}' after {self.deadline.timeout:g}s; the promotion "
            "goes on without us",
            chain_id=self.chain_id,
            deployment_id=self.deployment_id,
            status=self.last_status,
            environment=self.environment,
        )


class ActiveWatch:
    """Follows one deployment until it is ACTIVE (or scaled to zero after being active)."""

    def __init__(self, chain_id: str, deployment_id: str, timeout: float | None) -> None:
        self.chain_id = chain_id
        self.deployment_id = deployment_id
        self.deadline = Deadline(timeout)
        self.last_status: str | None = None

    def observe(self, deployment: ChainDeploymentV1) -> Step:
        self.last_status = deployment.status.value
        # Scaled to zero means it came up and is idle: it serves again on the next request.
        if deployment.status in (DeploymentStatusV1.ACTIVE, DeploymentStatusV1.SCALED_TO_ZERO):
            return Step.DONE
        if deployment.status in AT_REST_STATUSES:
            raise DeploymentFailed(
                f"deployment '{self.deployment_id}' is {deployment.status.value}",
                chain_id=self.chain_id,
                deployment_id=self.deployment_id,
                status=deployment.status.value,
            )
        return Step.PENDING

    def timed_out(self) -> WaitTimeout:
        return WaitTimeout(
            f"deployment '{self.deployment_id}' is still {self.last_status} after "
            f"{self.deadline.timeout:g}s",
            chain_id=self.chain_id,
            deployment_id=self.deployment_id,
            status=self.last_status,
        )
