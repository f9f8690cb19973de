"""Large request bodies: the entrypoint measures a blob, and its dependency measures it again
(so the blob also travels replica -> gateway -> replica)."""

import truss_chains as chains


class Count(chains.ChainletBase):
    async def run_remote(self, blob: str) -> int:
        return len(blob)


@chains.mark_entrypoint("sizes")
class Measure(chains.ChainletBase):
    def __init__(self, count: Count = chains.depends(Count)) -> None:
        self._count = count

    async def run_remote(self, blob: str) -> list[int]:
        return [len(blob), await self._count.run_remote(blob)]
