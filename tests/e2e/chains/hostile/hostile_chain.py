"""Workspace A's hostile chain (issue 16): its entrypoint runs every probe of hostile_probe.py
and answers what it found (tests/e2e/test_hostile_tenant.py)."""

from typing import Any

import hostile_probe
import truss_chains as chains


@chains.mark_entrypoint("hostile")
class Hostile(chains.ChainletBase):
    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._context = context

    def run_remote(
        self,
        gateway: str,
        b_workspace: str,
        b_chain_id: str,
        b_deployment_id: str,
        b_chainlet_id: str,
        b_request: dict[str, Any],
        data_dir: str | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        try:
            own_token: str | None = self._context.get_baseten_api_key()
        except Exception:  # no token of its own is a finding too
            own_token = None
        return hostile_probe.probe(
            gateway=gateway,
            b_workspace=b_workspace,
            b_chain_id=b_chain_id,
            b_deployment_id=b_deployment_id,
            b_chainlet_id=b_chainlet_id,
            b_request=b_request,
            data_dir=data_dir,
            own_token=own_token,
            api_key=api_key,
        )
