"""A chainlet that declares two secrets and reads them at call time: the workspace of the test
has only one of them."""

import truss_chains as chains


@chains.mark_entrypoint("secret-reader")
class SecretReader(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        assets=chains.Assets(secret_keys=["cy_present_token", "cy_absent_token"])
    )

    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._secrets = context.secrets

    def run_remote(self, name: str) -> str:
        return self._secrets[name]
