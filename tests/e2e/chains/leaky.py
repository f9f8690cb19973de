"""A chain whose entrypoint tells its caller its own chain key: what a hostile chainlet of
another chain holds."""

import truss_chains as chains


class Helper(chains.ChainletBase):
    async def run_remote(self) -> str:
        return ""


@chains.mark_entrypoint("leaky")
class Leaky(chains.ChainletBase):
    def __init__(
        self,
        helper: Helper = chains.depends(Helper),
        context: chains.DeploymentContext = chains.depends_context(),
    ) -> None:
        self._key = context.get_baseten_api_key()

    async def run_remote(self) -> str:
        return self._key
