"""Entry calls Dep, which may take its time; Dep takes one call at a time per replica, Entry
many, so that a burst on Entry is a burst of concurrent calls on Dep."""

import asyncio
import os

import truss_chains as chains


class Dep(chains.ChainletBase):
    remote_config = chains.RemoteConfig(compute=chains.Compute(predict_concurrency=1))

    async def run_remote(self, x: int, pause: float) -> dict[str, int]:
        await asyncio.sleep(pause)
        return {"y": x + 1, "pid": os.getpid()}


@chains.mark_entrypoint("direct")
class Entry(chains.ChainletBase):
    remote_config = chains.RemoteConfig(compute=chains.Compute(predict_concurrency=32))

    def __init__(self, dep: Dep = chains.depends(Dep)) -> None:
        self._dep = dep

    async def run_remote(self, x: int, pause: float = 0.0) -> dict[str, int]:
        return await self._dep.run_remote(x, pause)
