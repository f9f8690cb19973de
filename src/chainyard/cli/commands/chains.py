"""`chainyard chains ...`: list, show and delete chains; read a chain's audit log."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer

from chainyard.cli import render
from chainyard.cli.session import Session, connected
from chainyard.schemas import AuditLogSortDirectionV1, ChainsV1

app = typer.Typer(no_args_is_help=True, help="Chains: list, show, delete, audit log.")

ChainArg = Annotated[str, typer.Argument(help="Chain id or name", show_default=False)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]


@app.command("ls")
@connected
def ls(
    s: Session,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many")] = None,
) -> None:
    """List the workspace's chains."""
    pages = s.client.chains.iter(page_size=min(limit or 100, 100))
    chains = list(itertools.islice(pages, limit))
    if s.json:
        s.emit_json(ChainsV1(chains=chains))
    else:
        s.out.print(render.chains(chains))


@app.command("get")
@connected
def get(s: Session, chain: ChainArg) -> None:
    """Show a chain and its environments."""
    found = s.chain(chain)
    if s.json:
        s.emit_json(found)
        return
    environments = s.client.environments.list(found.id).environments
    s.out.print(render.chain(found, environments))


@app.command("rm")
@connected
def rm(s: Session, chain: ChainArg, yes: Yes = False) -> None:
    """Delete a chain with all its deployments and environments."""
    found = s.chain(chain)
    if not yes:
        typer.confirm(
            f"delete chain {found.name} ({found.id}) and its {found.deployments_count} "
            "deployment(s)?",
            abort=True,
            err=True,
        )
    tombstone = s.client.chains.delete(found.id)
    if s.json:
        s.emit_json(tombstone)
    else:
        s.out.print(f"deleted chain {found.name} ({found.id})")


@app.command("audit")
@connected
def audit(
    s: Session,
    chain: ChainArg,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Entries per page")] = 20,
    environment: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="Only this environment")
    ] = None,
    deployment: Annotated[
        list[str] | None, typer.Option("--deployment", "-d", help="Only this deployment")
    ] = None,
    search: Annotated[str | None, typer.Option(help="Only entries matching this text")] = None,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page")] = None,
    oldest_first: Annotated[bool, typer.Option(help="Oldest entries first")] = False,
) -> None:
    """Show a chain's audit log, newest first."""
    chain_id = s.chain_id(chain)
    page = s.client.chains.audit_logs(
        chain_id,
        limit=limit,
        cursor=cursor,
        search=search,
        environment_names=environment,
        chain_deployment_ids=deployment,
        direction=AuditLogSortDirectionV1.ASC if oldest_first else AuditLogSortDirectionV1.DESC,
    )
    if s.json:
        s.emit_json(page)
        return
    s.out.print(render.audit(page.items))
    if page.pagination.has_more and page.pagination.cursor:
        s.err.print(f"more: --cursor {page.pagination.cursor}")
