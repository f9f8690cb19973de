"""Answers the environment its replica sees (tests/e2e/test_replica_environment.py)."""

import os

import truss_chains as chains


class EnvironProbe(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        options=chains.ChainletOptions(env_variables={"CY_CHAINLET_OWN": "mine"})
    )

    def run_remote(self) -> dict[str, str]:
        return dict(os.environ)
