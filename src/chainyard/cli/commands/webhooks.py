"""`chainyard webhooks ...`: the secrets that sign async requests' webhooks."""

from __future__ import annotations

from collections.abc import Iterable

import typer
from rich.table import Table

from chainyard.cli import render
from chainyard.cli.session import Session, connected
from chainyard.schemas import WebhookSecretV1

app = typer.Typer(
    no_args_is_help=True,
    help="Webhook signing secrets (X-BASETEN-SIGNATURE); a value is shown only when created.",
)


def _table(items: Iterable[WebhookSecretV1]) -> Table:
    out = render.table("ID", "CREATED", "SIGNS UNTIL")
    for secret in items:
        until = render.when(secret.expires_at) if secret.expires_at else "- (current)"
        out.add_row(secret.id, render.when(secret.created_at), until)
    return out


@app.command("create")
@connected
def create(s: Session) -> None:
    """Create a new webhook secret; it is printed once, as the last line. The previous one keeps
    signing (a second signature in the header) for 24 hours, so receivers can switch."""
    created = s.client.webhook_secrets.create()
    if s.json:
        s.emit_json(created)
        return
    s.err.print("created a webhook secret (store it now; it is not shown again):")
    for old in created.previous:
        if old.expires_at is not None:
            s.err.print(f"  secret {old.id} keeps signing until {render.when(old.expires_at)} UTC")
    typer.echo(created.secret)


@app.command("ls")
@connected
def ls(s: Session) -> None:
    """List the secrets that sign webhooks now (ids and dates; never values)."""
    answer = s.client.webhook_secrets.list()
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(_table(answer.webhook_secrets))
