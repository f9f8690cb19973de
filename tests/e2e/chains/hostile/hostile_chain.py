"""Workspace A's hostile chain (issue 16): its entrypoint runs every probe of hostile_probe.py
and answers what it found (tests/e2e/test_hostile_tenant.py).

Arguments and answer travel as JSON text: truss_chains' I/O types allow neither `Any` nor
optional values."""

import json

import hostile_probe
import truss_chains as chains


@chains.mark_entrypoint("hostile")
class Hostile(chains.ChainletBase):
    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._context = context

    def run_remote(self, arguments: str) -> str:
        """`arguments`: hostile_probe.probe's keyword arguments but `own_token`, as JSON."""
        try:
            own_token = self._context.get_baseten_api_key()
        except Exception:  # no token of its own is a finding too
            own_token = None
        return json.dumps(hostile_probe.probe(**json.loads(arguments), own_token=own_token))
