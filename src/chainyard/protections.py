"""Which of the trust model's protections (docs/security.md) this server has active, for
`/healthz` and `chainyard serve`'s banner, and the rule that keeps an unsandboxed server to one
workspace: an operator sees at a glance what a chainlet can reach."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import func, select

from chainyard.services.context import Core
from chainyard.store.workspaces import Workspace


class _Backend(Protocol):
    name: str


def sandboxed(backend: _Backend) -> bool:
    return bool(getattr(backend, "sandboxed", False))


def active(backend: _Backend) -> dict[str, str]:
    """Each protection and its state: "on", "off" (not built yet, or not possible here) or
    "n/a" (nothing to protect on this runtime)."""
    runs_code = backend.name != "simulated"
    return {
        # runtime/replica_env.py, on the local and Ray runtimes.
        "clean_replica_environment": "on" if runs_code else "n/a",
        # runtime/sandbox.py: local runtime, Linux with bubblewrap; a Ray cluster is one trust
        # domain (docs/ray.md).
        "replica_sandbox": ("on" if sandboxed(backend) else "off") if runs_code else "n/a",
        # Random chain keys, stored hashed and scoped to a chainlet's declared dependencies
        # (services/chainlet_credentials.py); a random credential per replica that only the
        # gateway holds (replica_auth.py). Local and Ray.
        "per_deployment_credentials": "on" if runs_code else "n/a",
    }


def unprotected(backend: _Backend) -> bool:
    """Chainlet code runs here without a sandbox: workspaces would reach each other."""
    return active(backend)["replica_sandbox"] == "off"


def banner(backend: _Backend, *, allow_unsandboxed: bool = False) -> str:
    states = active(backend)
    shown = ", ".join(f"{name} {state}" for name, state in states.items())
    line = f"protections: {shown} (docs/security.md)"
    if unprotected(backend):
        why = getattr(backend, "sandbox_problem", None)
        line += (
            "\nWARNING: replicas run without a sandbox"
            + (f" ({why})" if why else "")
            + ": chainlet code can read this server's data dir and see its processes. "
            + (
                "--allow-unsandboxed is set: several workspaces are served all the same."
                if allow_unsandboxed
                else "This server serves one workspace only (--allow-unsandboxed to serve "
                "several that trust each other)."
            )
        )
    return line


class SharedUnsandboxed(ValueError):
    """Several workspaces on a server whose chainlet code runs unsandboxed."""


def single_workspace(core: Core, backend: _Backend, *, allow_unsandboxed: bool) -> str | None:
    """The one workspace an unsandboxed server serves (None: no such limit here). Raises
    SharedUnsandboxed when the store holds several and the operator did not opt out."""
    if allow_unsandboxed or not unprotected(backend):
        return None
    with core.db.read() as session:
        count = session.scalar(select(func.count()).select_from(Workspace)) or 0
        first = session.scalar(select(Workspace.id).order_by(Workspace.created_at).limit(1))
    if count > 1:
        raise SharedUnsandboxed(
            f"the store holds {count} workspaces, and replicas here run without a sandbox "
            f"({getattr(backend, 'sandbox_problem', None) or 'the ' + backend.name + ' runtime'}"
            "), so their chainlet code could reach each other's secrets: install bubblewrap "
            "(local runtime), give each workspace its own server, or pass --allow-unsandboxed "
            "if they trust each other (docs/security.md)"
        )
    return first
