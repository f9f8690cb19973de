"""An LLM-shaped chain: the entrypoint streams what a streaming dependency streams to it.

`Words` yields one word at a time. After the first word it waits for the file `gate` (when one
is given), so a test can prove each chunk reaches the client while the rest is still being made.
`fail_after=n` raises instead of yielding word n: before any chunk (n=0), or mid-stream.
`Tally` streams bytes: pydantic items framed by truss's stream writer, which `Shout` reads back
with truss's stream reader when asked for a `tally`.
"""

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pydantic
import truss_chains as chains
from truss_chains import streaming

GATE_WAIT_SECONDS = 60.0


class Count(pydantic.BaseModel):
    word: str
    letters: int


class Total(pydantic.BaseModel):
    letters: int


TALLY = streaming.stream_types(Count, footer_type=Total)


class Words(chains.ChainletBase):
    async def run_remote(
        self, words: list[str], gate: str = "", fail_after: int = -1
    ) -> AsyncIterator[str]:
        for i, word in enumerate(words):
            if i == fail_after:
                raise ValueError(f"Words refuses word {i}: {word!r}")
            # Chunk boundaries are not kept on the way (as on Baseten): separators are data.
            yield word + " "
            if i == 0 and gate:
                waited = 0.0
                while not pathlib.Path(gate).exists():
                    if waited > GATE_WAIT_SECONDS:
                        raise TimeoutError(f"the test never opened the gate {gate}")
                    await asyncio.sleep(0.02)
                    waited += 0.02


class Tally(chains.ChainletBase):
    async def run_remote(self, words: list[str]) -> AsyncIterator[bytes]:
        writer = streaming.stream_writer(TALLY)
        for word in words:
            yield writer.yield_item(Count(word=word, letters=len(word)))
        yield writer.yield_footer(Total(letters=sum(len(w) for w in words)))


@chains.mark_entrypoint("streams")
class Shout(chains.ChainletBase):
    def __init__(
        self, words: Words = chains.depends(Words), tally: Tally = chains.depends(Tally)
    ) -> None:
        self._words = words
        self._tally = tally

    async def run_remote(
        self, words: list[str], gate: str = "", fail_after: int = -1, tally: bool = False
    ) -> AsyncIterator[str]:
        if tally:
            reader = streaming.stream_reader(TALLY, self._tally.run_remote(words))
            async for count in reader.read_items():
                yield f"{count.word}={count.letters};"
            yield f"total={(await reader.read_footer()).letters}"
            return
        async for word in self._words.run_remote(words, gate=gate, fail_after=fail_after):
            yield word.upper()
