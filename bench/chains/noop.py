"""One chainlet that does nothing, for the cold start from zero: what a request to a scaled-to-zero
chainlet costs beyond the work itself."""

import os

import truss_chains as chains


@chains.mark_entrypoint("noop")
class Noop(chains.ChainletBase):
    async def run_remote(self, n: int) -> dict[str, int]:
        return {"n": n, "pid": os.getpid()}
