"""`chainyard deployments ...`: a chain's deployments, their activation and removal."""

from __future__ import annotations

from typing import Annotated

import typer

from chainyard.cli import progress, render
from chainyard.cli.commands.chains import ChainArg, Yes
from chainyard.cli.session import Session, connected

app = typer.Typer(no_args_is_help=True, help="Deployments of a chain.")

DeploymentArg = Annotated[str, typer.Argument(help="Deployment id", show_default=False)]
Timeout = Annotated[float, typer.Option(min=0, help="Seconds to wait at most")]


@app.command("ls")
@connected
def ls(
    s: Session,
    chain: ChainArg,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many")] = None,
) -> None:
    """List a chain's deployments, newest first."""
    answer = s.client.deployments.list(s.chain_id(chain), limit=limit)
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(render.deployments(answer.deployments))


@app.command("get")
@connected
def get(s: Session, chain: ChainArg, deployment: DeploymentArg) -> None:
    """Show a deployment and its chainlets."""
    found = s.client.deployments.get(s.chain_id(chain), deployment)
    if s.json:
        s.emit_json(found)
    else:
        s.out.print(render.deployment(found))


@app.command("activate")
@connected
def activate(
    s: Session,
    chain: ChainArg,
    deployment: DeploymentArg,
    wait: Annotated[bool, typer.Option(help="Wait until it is ACTIVE")] = False,
    timeout: Timeout = 600.0,
) -> None:
    """Start an inactive deployment again."""
    chain_id = s.chain_id(chain)
    answer = s.client.deployments.activate(chain_id, deployment)
    if wait:
        progress.watch_deployment(
            s.client, s.err, chain_id, deployment, timeout=timeout, quiet=s.quiet_progress
        )
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(f"deployment {deployment} {'is ACTIVE' if wait else 'is being activated'}")


@app.command("deactivate")
@connected
def deactivate(s: Session, chain: ChainArg, deployment: DeploymentArg) -> None:
    """Stop a deployment's replicas; it keeps its settings and can be activated again."""
    answer = s.client.deployments.deactivate(s.chain_id(chain), deployment)
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(f"deployment {deployment} is being deactivated")


@app.command("rm")
@connected
def rm(s: Session, chain: ChainArg, deployment: DeploymentArg, yes: Yes = False) -> None:
    """Delete a deployment (not one an environment serves)."""
    chain_id = s.chain_id(chain)
    if not yes:
        typer.confirm(f"delete deployment {deployment} of chain {chain_id}?", abort=True, err=True)
    tombstone = s.client.deployments.delete(chain_id, deployment)
    if s.json:
        s.emit_json(tombstone)
    else:
        s.out.print(f"deleted deployment {deployment}")
