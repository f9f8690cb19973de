"""Workspace-wide commands: `instance-types`, `secrets ...`, `keys ...`, `config`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chainyard.cli import render
from chainyard.cli.commands.chains import Yes
from chainyard.cli.session import ExitCode, Session, connected
from chainyard.schemas import APIKeyCategory

secrets_app = typer.Typer(no_args_is_help=True, help="Workspace secrets (values are write-only).")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the workspace.")


@connected
def instance_types(s: Session) -> None:
    """List the instance types chainlets can run on, with prices."""
    answer = s.client.instance_types.prices()
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(render.instance_types(answer.instance_types))


@connected
def config(s: Session) -> None:
    """Show the settings commands would use, and where each comes from (no server call)."""
    key = s.settings.api_key
    shown = {
        "url": s.settings.url,
        "api_key": f"{key.partition('.')[0]}.***" if key else None,
        "output": s.settings.output.value,
        "profile": s.settings.profile,
        "sources": dict(s.settings.sources),
    }
    if s.json:
        s.emit_json(shown)
        return
    table = render.table("SETTING", "VALUE", "FROM")
    for name in ("url", "api_key", "output"):
        table.add_row(name, str(shown[name] or "-"), s.settings.sources[name])
    table.add_row("profile", s.settings.profile or "-", "")
    s.out.print(table)


@secrets_app.command("ls")
@connected
def secrets_ls(s: Session) -> None:
    """List secrets (names only)."""
    answer = s.client.secrets.list()
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(render.secrets(answer.secrets))


@secrets_app.command("set")
@connected
def secrets_set(
    s: Session,
    name: Annotated[str, typer.Argument(help="Secret name", show_default=False)],
    value: Annotated[
        str | None,
        typer.Option(help="The value; without it, read from stdin (or prompted on a terminal)"),
    ] = None,
) -> None:
    """Create a secret or replace its value."""
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"value of {name}", hide_input=True, err=True)
        else:
            value = sys.stdin.read().rstrip("\n")
    if not value:
        s.fail("the value is empty", ExitCode.USAGE)
    secret = s.client.secrets.upsert(name, value)
    if s.json:
        s.emit_json(secret)
    else:
        s.out.print(f"secret {secret.name} stored")


@secrets_app.command("rm")
@connected
def secrets_rm(
    s: Session, name: Annotated[str, typer.Argument(help="Secret name", show_default=False)]
) -> None:
    """Delete a secret."""
    tombstone = s.client.secrets.delete(name)
    if s.json:
        s.emit_json(tombstone)
    else:
        s.out.print(f"secret {tombstone.name} deleted")


@keys_app.command("ls")
@connected
def keys_ls(s: Session) -> None:
    """List API keys (prefixes and names; secrets are never shown again)."""
    answer = s.client.api_keys.list()
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(render.api_keys(answer.keys))


@keys_app.command("create")
@connected
def keys_create(
    s: Session,
    type: Annotated[
        APIKeyCategory, typer.Option("--type", case_sensitive=False, help="What the key may do")
    ] = APIKeyCategory.WORKSPACE_MANAGE_ALL,
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
) -> None:
    """Create an API key; it is printed once, as the last line."""
    created = s.client.api_keys.create(type=type, name=name)
    if s.json:
        s.emit_json(created)
        return
    s.err.print(f"created a {type.value} key (store it now; it is not shown again):")
    typer.echo(created.api_key)


@keys_app.command("rm")
@connected
def keys_rm(
    s: Session,
    prefix: Annotated[str, typer.Argument(help="The key's prefix", show_default=False)],
    yes: Yes = False,
) -> None:
    """Revoke an API key."""
    if not yes:
        typer.confirm(f"revoke API key {prefix}?", abort=True, err=True)
    tombstone = s.client.api_keys.delete(prefix)
    if s.json:
        s.emit_json(tombstone)
    else:
        s.out.print(f"API key {tombstone.prefix} revoked")
