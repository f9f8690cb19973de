"""One chainlet whose call takes 200 ms, one call at a time per replica (truss's default
`predict_concurrency` of 1), for the scale-up step and the promotion under load.

The answer names the replica (its process id) and the deployment it belongs to (the process id of
the host that forked it: the local runtime runs one host per deployment), so the benchmark can see
from the answers alone when a second replica serves and when the new deployment has taken over.
"""

import asyncio
import os

import truss_chains as chains

SLEEP_SECONDS = 0.2


@chains.mark_entrypoint("sleepy")
class Sleepy(chains.ChainletBase):
    async def run_remote(self, n: int) -> dict[str, int]:
        await asyncio.sleep(SLEEP_SECONDS)
        return {"n": n, "pid": os.getpid(), "host": os.getppid()}
