"""A chainlet whose `is_healthy` fails for as long as a request asks: out of traffic after
stop_traffic_threshold_seconds, back once it passes, restarted after restart_threshold_seconds."""

import os
import time

import truss_chains as chains
from truss.base import truss_config


@chains.mark_entrypoint("moody")
class Moody(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        options=chains.ChainletOptions(
            health_checks=truss_config.HealthChecks(
                stop_traffic_threshold_seconds=10, restart_threshold_seconds=20
            )
        )
    )

    def __init__(self) -> None:
        self._sick_until = 0.0

    async def run_remote(self, sick_for: float) -> dict[str, int]:
        served_while_sick = time.monotonic() < self._sick_until
        self._sick_until = time.monotonic() + sick_for
        return {"pid": os.getpid(), "served_while_sick": int(served_while_sick)}

    async def is_healthy(self) -> bool:
        return time.monotonic() >= self._sick_until
