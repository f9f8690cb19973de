"""One chainlet that does nothing and takes up to 64 calls at a time, for the async benchmark:
what a request costs beyond the work, on the async path (queue, runner, gateway) and on the sync
path, with one replica serving every call either path sends at once."""

import truss_chains as chains


@chains.mark_entrypoint("noop_wide")
class NoopWide(chains.ChainletBase):
    remote_config = chains.RemoteConfig(compute=chains.Compute(predict_concurrency=64))

    async def run_remote(self, n: int) -> int:
        return n
