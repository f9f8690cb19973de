"""The API commands of `chainyard`, one module per resource; all of them go through the SDK."""

from __future__ import annotations

import typer

from chainyard.cli import init, push
from chainyard.cli.commands import (
    async_requests,
    chainlets,
    chains,
    deployments,
    envs,
    inference,
    logs,
    watch,
    webhooks,
    workspace,
)

_DEPLOY = "Deploy and call"
_MANAGE = "Manage chains"
_WORKSPACE = "Workspace"


def register(app: typer.Typer) -> None:
    """Adds every API command, and `init`, to the `chainyard` app (serve and admin are added by
    main)."""
    app.command("init", rich_help_panel=_DEPLOY)(init.init)
    app.command("push", rich_help_panel=_DEPLOY)(push.push)
    app.command("watch", rich_help_panel=_DEPLOY)(watch.watch)
    app.command("run", rich_help_panel=_DEPLOY)(inference.run)
    app.command("wake", rich_help_panel=_DEPLOY)(inference.wake)
    app.command("logs", rich_help_panel=_DEPLOY)(logs.logs)
    app.add_typer(async_requests.app, name="async", rich_help_panel=_DEPLOY)
    app.add_typer(chains.app, name="chains", rich_help_panel=_MANAGE)
    app.add_typer(deployments.app, name="deployments", rich_help_panel=_MANAGE)
    app.add_typer(envs.app, name="envs", rich_help_panel=_MANAGE)
    app.add_typer(chainlets.app, name="chainlets", rich_help_panel=_MANAGE)
    app.command("instance-types", rich_help_panel=_WORKSPACE)(workspace.instance_types)
    app.add_typer(workspace.secrets_app, name="secrets", rich_help_panel=_WORKSPACE)
    app.add_typer(workspace.keys_app, name="keys", rich_help_panel=_WORKSPACE)
    app.add_typer(webhooks.app, name="webhooks", rich_help_panel=_WORKSPACE)
    app.command("config", rich_help_panel=_WORKSPACE)(workspace.config)
