"""An LLM-shaped chain: the entrypoint streams what a streaming dependency streams to it.

`Words` yields one word at a time. After the first word it waits for the file `gate` (when one
is given), so a test can prove each chunk reaches the client while the rest is still being made.
`fail_after=n` raises instead of yielding word n: before any chunk (n=0), or mid-stream.
"""

import asyncio
import pathlib
from collections.abc import AsyncIterator

import truss_chains as chains

GATE_WAIT_SECONDS = 60.0


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


@chains.mark_entrypoint("streams")
class Shout(chains.ChainletBase):
    def __init__(self, words: Words = chains.depends(Words)) -> None:
        self._words = words

    async def run_remote(
        self, words: list[str], gate: str = "", fail_after: int = -1
    ) -> AsyncIterator[str]:
        async for word in self._words.run_remote(words, gate=gate, fail_after=fail_after):
            yield word.upper()
