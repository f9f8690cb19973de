"""Two chainlets that do nothing but call each other, for the data-plane benchmark: what the path
client -> Entry -> Dep costs beyond the work itself. Both take up to 64 calls at a time, so one
replica each serves every connection the benchmark opens.

`pad` lets the benchmark send a 1 MB body; Entry parses it and answers its length only.
"""

import truss_chains as chains

CONFIG = chains.RemoteConfig(compute=chains.Compute(predict_concurrency=64))


class Dep(chains.ChainletBase):
    remote_config = CONFIG

    async def run_remote(self, x: int) -> int:
        return x + 1


@chains.mark_entrypoint("two_step")
class Entry(chains.ChainletBase):
    remote_config = CONFIG

    def __init__(self, dep: Dep = chains.depends(Dep)) -> None:
        self._dep = dep

    async def run_remote(self, x: int, pad: str = "") -> dict[str, int]:
        return {"y": await self._dep.run_remote(x), "pad": len(pad)}
