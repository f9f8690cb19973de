"""`chainyard chainlets ...`: per-chainlet settings of an environment (instance type,
autoscaling). `set-instance-type` is the operation chainyard was started for."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chainyard.cli import progress, render
from chainyard.cli.commands.chains import ChainArg
from chainyard.cli.commands.deployments import Timeout
from chainyard.cli.commands.envs import NoWait, parse_assignments
from chainyard.cli.session import ExitCode, Session, connected

app = typer.Typer(no_args_is_help=True, help="Chainlet settings of an environment.")

EnvArg = Annotated[str, typer.Argument(help="Environment name", show_default=False)]


@app.command("ls")
@connected
def ls(s: Session, chain: ChainArg, environment: EnvArg = "production") -> None:
    """Show each chainlet's instance type and autoscaling in an environment."""
    env = s.client.environments.get(s.chain_id(chain), environment)
    if s.json:
        s.emit_json(env.chainlet_settings)
    else:
        s.out.print(render.chainlet_settings(env))


@app.command("set-instance-type")
@connected
def set_instance_type(
    s: Session,
    chain: ChainArg,
    environment: EnvArg,
    assignments: Annotated[
        list[str],
        typer.Argument(
            help="CHAINLET=INSTANCE_TYPE, e.g. RandInt=2x8 (several at once make one deployment)",
            show_default=False,
        ),
    ],
    no_wait: NoWait = False,
    timeout: Timeout = 600.0,
) -> None:
    """Move chainlets to other instance types: a new deployment is built with them and
    promoted into the environment; the command follows it until it serves."""
    wanted = parse_assignments(assignments, "INSTANCE_TYPE")
    chain_id = s.chain_id(chain)
    before = s.client.environments.get(chain_id, environment)
    old = {c.chainlet_name: c.instance_type.id for c in before.chainlet_settings}
    answer = s.client.environments.update_instance_types(chain_id, environment, wanted)
    changes = ", ".join(f"{n}: {old.get(n, '?')} -> {t}" for n, t in wanted.items())
    new = answer.chain_deployment
    if not answer.requires_redeployment or new is None:
        if all(old.get(n) == t for n, t in wanted.items()):
            s.note(
                f"{environment} already runs {', '.join(f'{n} on {t}' for n, t in wanted.items())}"
            )
        elif before.current_deployment is None:
            s.note(f"{environment}: {changes}; stored for its first deployment")
        else:
            s.note(f"{environment}: {changes}; nothing to redeploy")
        if s.json:
            s.emit_json(answer)
        else:
            s.out.print(render.chainlet_settings(s.client.environments.get(chain_id, environment)))
        return
    s.note(f"{environment}: {changes}; new deployment {new.id} ({new.status.value})")
    if not no_wait:
        env = progress.watch_promotion(
            s.client,
            s.err,
            chain_id,
            environment,
            deployment_id=new.id,
            timeout=timeout,
            quiet=s.quiet_progress,
        )
        if env.current_deployment is not None:
            answer = answer.model_copy(update={"chain_deployment": env.current_deployment})
    if s.json:
        s.emit_json(answer)
        return
    deployment = answer.chain_deployment
    assert deployment is not None
    verb = "serves" if not no_wait else "is promoting"
    s.out.print(render.chainlets(deployment, title=f"{environment} {verb} deployment {new.id}"))


def _autoscaling_fields(**values: int | None) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@app.command("autoscale")
@connected
def autoscale(
    s: Session,
    chain: ChainArg,
    environment: EnvArg,
    chainlets: Annotated[
        list[str], typer.Argument(help="Chainlet names to apply it to", show_default=False)
    ],
    min_replica: Annotated[int | None, typer.Option(min=0, help="Lowest replica count")] = None,
    max_replica: Annotated[int | None, typer.Option(min=0, help="Highest replica count")] = None,
    concurrency_target: Annotated[
        int | None, typer.Option(min=1, help="Requests per replica before scaling up")
    ] = None,
    target_utilization: Annotated[
        int | None, typer.Option(min=1, max=100, help="Utilization percentage to aim for")
    ] = None,
    autoscaling_window: Annotated[
        int | None, typer.Option(min=0, help="Seconds of traffic considered")
    ] = None,
    scale_down_delay: Annotated[
        int | None, typer.Option(min=0, help="Seconds before a replica is removed")
    ] = None,
    max_scale_down_rate: Annotated[
        int | None, typer.Option(min=1, max=50, help="Percent of replicas removed per window")
    ] = None,
) -> None:
    """Change autoscaling of chainlets in an environment (only the options given)."""
    fields = _autoscaling_fields(
        min_replica=min_replica,
        max_replica=max_replica,
        concurrency_target=concurrency_target,
        target_utilization_percentage=target_utilization,
        autoscaling_window=autoscaling_window,
        scale_down_delay=scale_down_delay,
        max_scale_down_rate=max_scale_down_rate,
    )
    if not fields:
        s.fail("nothing to change: give at least one setting, e.g. --max-replica 3", ExitCode.USAGE)
    chain_id = s.chain_id(chain)
    answer = s.client.environments.update_autoscaling(
        chain_id, environment, dict.fromkeys(chainlets, fields)
    )
    if s.json:
        s.emit_json(answer)
        return
    s.err.print(f"{answer.status.value}: {answer.message}", markup=False)
    s.out.print(render.chainlet_settings(s.client.environments.get(chain_id, environment)))
