"""One slow chainlet: each call takes half a second, one call at a time per replica."""

import asyncio
import os

import truss_chains as chains


@chains.mark_entrypoint("slow")
class Slow(chains.ChainletBase):
    async def run_remote(self, n: int) -> dict[str, int]:
        await asyncio.sleep(0.5)
        return {"n": n, "pid": os.getpid()}
