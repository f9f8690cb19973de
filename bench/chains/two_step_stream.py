"""two_step.py streaming: Entry passes on what Dep streams, chunk by chunk, for the benchmark's
time to first byte. Dep's chunks come CHUNK_GAP_SECONDS apart, so a path that buffered the answer
would show a first byte no earlier than the whole stream."""

import asyncio
from collections.abc import AsyncIterator

import truss_chains as chains

CONFIG = chains.RemoteConfig(compute=chains.Compute(predict_concurrency=64))
CHUNKS = 4
CHUNK_GAP_SECONDS = 0.05


class StreamDep(chains.ChainletBase):
    remote_config = CONFIG

    async def run_remote(self, x: int) -> AsyncIterator[str]:
        for i in range(CHUNKS):
            if i:
                await asyncio.sleep(CHUNK_GAP_SECONDS)
            yield f"{x + i};"


@chains.mark_entrypoint("two_step_stream")
class StreamEntry(chains.ChainletBase):
    remote_config = CONFIG

    def __init__(self, dep: StreamDep = chains.depends(StreamDep)) -> None:
        self._dep = dep

    async def run_remote(self, x: int) -> AsyncIterator[str]:
        async for chunk in self._dep.run_remote(x):
            yield chunk
