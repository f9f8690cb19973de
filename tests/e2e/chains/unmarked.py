"""Two chainlets and no `mark_entrypoint`: the entrypoint is named on the command line
(`chainyard push unmarked.py Greeter`), and the server must import the file by that name."""

import truss_chains as chains


class Punctuate(chains.ChainletBase):
    def run_remote(self, text: str) -> str:
        return text + "!"


class Greeter(chains.ChainletBase):
    def __init__(self, punctuate: Punctuate = chains.depends(Punctuate)) -> None:
        self._punctuate = punctuate

    async def run_remote(self, name: str) -> str:
        return self._punctuate.run_remote(f"hello {name}")
