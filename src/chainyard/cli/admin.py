"""Operator commands that work on the store directly (no server, no API key needed)."""

from __future__ import annotations

import pathlib
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Operator commands on the store.")


@app.command("create-key")
def create_key(
    workspace: Annotated[str, typer.Option(help="Workspace name; created if new")],
    type: Annotated[
        str, typer.Option("--type", help="WORKSPACE_MANAGE_ALL or WORKSPACE_INVOKE")
    ] = "WORKSPACE_MANAGE_ALL",
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    data_dir: Annotated[pathlib.Path, typer.Option(help="The server's data dir")] = pathlib.Path(
        ".chainyard"
    ),
    database_url: Annotated[str | None, typer.Option(help="postgresql://... if not SQLite")] = None,
) -> None:
    """Create an API key; the key is printed as the last line (shown once)."""
    from sqlalchemy.exc import SQLAlchemyError

    from chainyard.config import ServerConfig
    from chainyard.domain.errors import ChainyardError
    from chainyard.server import build_core
    from chainyard.services import api_keys

    config = ServerConfig.from_env(data_dir=data_dir, database_url=database_url)
    try:
        core = build_core(config)
    except (ValueError, OSError, ImportError, SQLAlchemyError) as exc:
        typer.echo(f"chainyard: cannot open the store: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        raw = api_keys.admin_create_key(core, workspace, type, name)
    except ChainyardError as exc:
        typer.echo(f"chainyard: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        core.db.dispose()
    typer.echo(
        f"created a {type} key for workspace '{workspace}' (store it now; it is not shown again):"
    )
    typer.echo(raw)
