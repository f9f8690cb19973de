"""numpy arrays between chainlets in msgpack (`chains.depends(..., use_binary=True)`), to an async
and to a sync dependency, and msgpack from and to the client.

`Pipeline` makes a small grey image, has `Invert` (async) and then `Halve` (sync) work on it over
binary RPCs, and answers plain numbers about the result, so a client without numpy can check it.
numpy is imported where it is used: the machine that pushes the chain need not have it.
"""

import pydantic
import truss_chains as chains
from truss_chains import pydantic_numpy

IMAGE = chains.DockerImage(pip_requirements=["numpy<2", "msgpack-numpy==0.4.8"])


class Frame(pydantic.BaseModel):
    label: str
    pixels: pydantic_numpy.NumpyArrayField


class Summary(pydantic.BaseModel):
    label: str
    shape: list[int]
    dtype: str
    total: int
    expected_total: int
    note_length: int


class Invert(chains.ChainletBase):
    remote_config = chains.RemoteConfig(docker_image=IMAGE)

    async def run_remote(self, frame: Frame) -> Frame:
        import numpy as np

        assert isinstance(frame.pixels.array, np.ndarray), type(frame.pixels.array)
        return Frame(label=frame.label + "+inverted", pixels=255 - frame.pixels.array)


class Halve(chains.ChainletBase):
    remote_config = chains.RemoteConfig(docker_image=IMAGE)

    def run_remote(self, frame: Frame, divisor: int) -> Frame:
        return Frame(label=frame.label + "+halved", pixels=frame.pixels.array // divisor)


@chains.mark_entrypoint("binary")
class Pipeline(chains.ChainletBase):
    remote_config = chains.RemoteConfig(docker_image=IMAGE)

    def __init__(
        self,
        invert: Invert = chains.depends(Invert, use_binary=True),
        halve: Halve = chains.depends(Halve, use_binary=True),
    ) -> None:
        self._invert = invert
        self._halve = halve

    async def run_remote(self, label: str, width: int, height: int, note: bytes) -> Summary:
        import numpy as np

        pixels = (np.arange(width * height) % 256).astype(np.uint8).reshape(height, width)
        inverted = await self._invert.run_remote(Frame(label=label, pixels=pixels))
        result = self._halve.run_remote(inverted, 2)
        halved = result.pixels.array
        return Summary(
            label=result.label,
            shape=list(halved.shape),
            dtype=str(halved.dtype),
            total=int(halved.sum()),
            expected_total=int(((255 - pixels) // 2).sum()),
            note_length=len(note),
        )
