"""Which of the trust model's protections (docs/security.md) this server has active, for
`/healthz` and `chainyard serve`'s banner: an operator sees at a glance what a chainlet can
reach."""

from __future__ import annotations


def active(runtime: str) -> dict[str, str]:
    """Each protection and its state: "on", "off" (not built yet, or not possible here) or
    "n/a" (nothing to protect on this runtime)."""
    simulated = runtime == "simulated"
    return {
        # runtime/replica_env.py, on the local and Ray runtimes.
        "clean_replica_environment": "n/a" if simulated else "on",
        # A sandbox per deployment (issue 16): until it exists, replicas can read the data dir.
        "replica_sandbox": "n/a" if simulated else "off",
        # Random chain keys, stored hashed and scoped to a chainlet's declared dependencies
        # (services/chainlet_credentials.py); a random credential per replica that only the
        # gateway holds (replica_auth.py). Local and Ray.
        "per_deployment_credentials": "n/a" if simulated else "on",
    }


def banner(runtime: str) -> str:
    states = active(runtime)
    shown = ", ".join(f"{name} {state}" for name, state in states.items())
    line = f"protections: {shown} (docs/security.md)"
    if states["replica_sandbox"] == "off":
        line += (
            "; without the sandbox, chainlet code can read this server's data dir: serve only "
            "workspaces that trust each other"
        )
    return line
