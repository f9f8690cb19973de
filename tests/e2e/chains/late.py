"""Two chainlets that never become ready within startup_threshold_seconds: one whose `__init__`
takes too long, one whose `is_healthy` never passes. Both are restarted, and the logs say why."""

import time

import truss_chains as chains
from truss.base import truss_config

_STARTUP = chains.ChainletOptions(
    health_checks=truss_config.HealthChecks(startup_threshold_seconds=10)
)


class NeverHealthy(chains.ChainletBase):
    remote_config = chains.RemoteConfig(options=_STARTUP)

    def run_remote(self, x: int) -> int:
        return x

    def is_healthy(self) -> bool:
        return False


@chains.mark_entrypoint("late")
class SlowInit(chains.ChainletBase):
    remote_config = chains.RemoteConfig(options=_STARTUP)

    def __init__(self, never: NeverHealthy = chains.depends(NeverHealthy)) -> None:
        time.sleep(120)
        self._never = never

    def run_remote(self, x: int) -> int:
        return self._never.run_remote(x)
