"""A chain exercising the runtime's corners: a streaming entrypoint, a sync dependency, a health
check that gates readiness, a replica that can be made to crash, and secrets it did not declare."""

import os
import pathlib
from collections.abc import AsyncIterator

import truss_chains as chains


class Upper(chains.ChainletBase):
    remote_config = chains.RemoteConfig(assets=chains.Assets(secret_keys=["shout_suffix"]))

    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._suffix = context.secrets["shout_suffix"]
        self._data_dir = context.data_dir

    def run_remote(self, word: str) -> str:  # sync on purpose: served from a worker thread
        if word == "crash":
            os._exit(7)
        return word.upper() + self._suffix

    def is_healthy(self) -> bool:
        # Ready only once the test drops this file into the chainlet's data dir.
        return self._data_dir is not None and (pathlib.Path(self._data_dir) / "healthy").exists()


@chains.mark_entrypoint("features")
class Tokens(chains.ChainletBase):
    def __init__(
        self,
        upper: Upper = chains.depends(Upper),
        context: chains.DeploymentContext = chains.depends_context(),
    ) -> None:
        self._upper = upper
        self._secrets = context.secrets

    async def run_remote(self, text: str) -> AsyncIterator[str]:
        # Undeclared secrets are not visible: shout_suffix belongs to Upper only.
        yield f"sees-secret={'shout_suffix' in self._secrets};"
        for word in text.split():
            yield self._upper.run_remote(word) + ";"
