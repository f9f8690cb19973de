"""`chainyard envs ...`: a chain's environments, their promotion settings, and promotion."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chainyard.cli import progress, render
from chainyard.cli.commands.chains import ChainArg
from chainyard.cli.commands.deployments import DeploymentArg, Timeout
from chainyard.cli.session import ExitCode, Session, connected
from chainyard.schemas import PromotionCleanupStrategyV1

app = typer.Typer(no_args_is_help=True, help="Environments of a chain, and promotion.")

EnvArg = Annotated[str, typer.Argument(help="Environment name", show_default=False)]
Cleanup = Annotated[
    PromotionCleanupStrategyV1 | None,
    typer.Option(
        "--cleanup",
        case_sensitive=False,
        help="What happens to the previous deployment after a promotion",
        show_default=False,
    ),
]
Redeploy = Annotated[
    bool | None,
    typer.Option(
        "--redeploy-on-promotion/--no-redeploy-on-promotion",
        help="Promote a fresh copy of the deployment instead of the deployment itself",
        show_default=False,
    ),
]
Rolling = Annotated[
    bool | None,
    typer.Option(
        "--rolling-deploy/--no-rolling-deploy",
        help="Replace replicas gradually when promoting",
        show_default=False,
    ),
]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Return once the change is accepted")]


def _promotion_settings(
    cleanup: PromotionCleanupStrategyV1 | None, redeploy: bool | None, rolling: bool | None
) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if cleanup is not None:
        settings["promotion_cleanup_strategy"] = cleanup.value
    if redeploy is not None:
        settings["redeploy_on_promotion"] = redeploy
    if rolling is not None:
        settings["rolling_deploy"] = rolling
    return settings


def parse_assignments(pairs: list[str], what: str) -> dict[str, str]:
    """NAME=VALUE arguments, each NAME once."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"expected NAME={what}, got {pair!r}")
        if name in out:
            raise ValueError(f"{name} is given twice")
        out[name] = value
    return out


@app.command("ls")
@connected
def ls(s: Session, chain: ChainArg) -> None:
    """List a chain's environments and what each serves."""
    answer = s.client.environments.list(s.chain_id(chain))
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(render.environments_table(answer.environments))


@app.command("get")
@connected
def get(s: Session, chain: ChainArg, environment: EnvArg) -> None:
    """Show an environment: what it serves, its promotion and chainlet settings."""
    env = s.client.environments.get(s.chain_id(chain), environment)
    if s.json:
        s.emit_json(env)
    else:
        s.out.print(render.environment(env))


@app.command("create")
@connected
def create(
    s: Session,
    chain: ChainArg,
    name: Annotated[str, typer.Argument(help="New environment's name", show_default=False)],
    cleanup: Cleanup = None,
    redeploy_on_promotion: Redeploy = None,
    rolling_deploy: Rolling = None,
    instance_type: Annotated[
        list[str] | None,
        typer.Option(
            "--instance-type", help="CHAINLET=TYPE for a chainlet in this environment (repeat)"
        ),
    ] = None,
) -> None:
    """Create an environment (e.g. staging) to promote deployments into."""
    settings = _promotion_settings(cleanup, redeploy_on_promotion, rolling_deploy)
    chainlets = [
        {"chainlet_name": n, "instance_type_id": t}
        for n, t in parse_assignments(instance_type or [], "TYPE").items()
    ]
    env = s.client.environments.create(
        s.chain_id(chain),
        name,
        promotion_settings=settings or None,
        chainlet_settings=chainlets or None,
    )
    if s.json:
        s.emit_json(env)
    else:
        s.out.print(render.environment(env))


@app.command("update")
@connected
def update(
    s: Session,
    chain: ChainArg,
    environment: EnvArg,
    cleanup: Cleanup = None,
    redeploy_on_promotion: Redeploy = None,
    rolling_deploy: Rolling = None,
) -> None:
    """Change an environment's promotion settings (those given; the rest stay)."""
    settings = _promotion_settings(cleanup, redeploy_on_promotion, rolling_deploy)
    if not settings:
        s.fail(
            "nothing to change: give --cleanup, --[no-]redeploy-on-promotion or "
            "--[no-]rolling-deploy",
            ExitCode.USAGE,
        )
    chain_id = s.chain_id(chain)
    s.client.environments.update(chain_id, environment, promotion_settings=settings)
    env = s.client.environments.get(chain_id, environment)
    if s.json:
        s.emit_json(env)
    else:
        s.out.print(render.environment(env))


@app.command("promote")
@connected
def promote(
    s: Session,
    chain: ChainArg,
    environment: EnvArg,
    deployment: DeploymentArg,
    keep_previous: Annotated[
        bool, typer.Option(help="Leave the replaced deployment running (no clean-up)")
    ] = False,
    no_wait: NoWait = False,
    timeout: Timeout = 600.0,
) -> None:
    """Promote a deployment into an environment and wait until it serves there."""
    chain_id = s.chain_id(chain)
    promoting = s.client.environments.promote(
        chain_id, environment, deployment, scale_down_previous_deployment=not keep_previous
    )
    if promoting.id != deployment:
        s.note(f"promoting {promoting.id}, a copy of {deployment} with {environment}'s settings")
    if no_wait:
        if s.json:
            s.emit_json(promoting)
        else:
            s.out.print(f"promoting deployment {promoting.id} into {environment}")
        return
    env = progress.watch_promotion(
        s.client,
        s.err,
        chain_id,
        environment,
        deployment_id=promoting.id,
        timeout=timeout,
        quiet=s.quiet_progress,
    )
    if s.json:
        s.emit_json(env)
    else:
        s.out.print(f"{environment} serves deployment {promoting.id}")
