"""Where replicas run: each chainlet reports its Ray node (the pid of the raylet it runs under)
and the GPUs it sees. The tests move `Accelerated` to a GPU instance type."""

import os

import pydantic
import truss_chains as chains


class Where(pydantic.BaseModel):
    raylet: str | None
    gpus: str | None


class Answer(pydantic.BaseModel):
    entry: Where
    gpu: Where | None = None


def where() -> Where:
    return Where(
        raylet=os.environ.get("RAY_RAYLET_PID"), gpus=os.environ.get("CUDA_VISIBLE_DEVICES")
    )


class Accelerated(chains.ChainletBase):
    async def run_remote(self) -> Where:
        return where()


@chains.mark_entrypoint("placement")
class Placement(chains.ChainletBase):
    def __init__(self, accelerated: Accelerated = chains.depends(Accelerated)) -> None:
        self._accelerated = accelerated

    async def run_remote(self, with_gpu: bool = True) -> Answer:
        if not with_gpu:
            return Answer(entry=where())
        return Answer(entry=where(), gpu=await self._accelerated.run_remote())
