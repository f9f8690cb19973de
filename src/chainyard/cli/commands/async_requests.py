"""`chainyard async ...`: async inference (docs/async-inference.md). `submit` queues a call of a
chain and prints the request's id; the result goes to the webhook it names. `status`, `cancel`
and `queue` follow requests and queues."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from chainyard.cli import render
from chainyard.cli.commands.chains import ChainArg
from chainyard.cli.commands.inference import read_data
from chainyard.cli.session import ExitCode, Session, connected
from chainyard.schemas import AsyncRequestStatusResponse

app = typer.Typer(
    no_args_is_help=True,
    help="Async inference: submit a request (its result goes to a webhook), follow it, cancel "
    "it while queued, count a queue.",
)

RequestArg = Annotated[str, typer.Argument(help="The async request's id", show_default=False)]
Env = Annotated[
    str | None,
    typer.Option("--env", "--environment", "-e", help="Environment (default production)"),
]
Deployment = Annotated[
    str | None, typer.Option("--deployment", "-d", help="This deployment instead")
]
Development = Annotated[
    bool, typer.Option("--development", help="The chain's development deployment instead")
]

_STATUS_STYLE = {
    "QUEUED": "yellow",
    "IN_PROGRESS": "yellow",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "EXPIRED": "red",
    "WEBHOOK_FAILED": "red",
    "CANCELED": "dim",
}


def _retry_config(
    max_attempts: int | None, initial_delay_ms: int | None, max_delay_ms: int | None
) -> dict[str, int] | None:
    given = {
        "max_attempts": max_attempts,
        "initial_delay_ms": initial_delay_ms,
        "max_delay_ms": max_delay_ms,
    }
    config = {k: v for k, v in given.items() if v is not None}
    return config or None


@app.command("submit")
@connected
def submit(
    s: Session,
    chain: ChainArg,
    data: Annotated[
        str,
        typer.Option(
            "--input",
            "--data",
            help="The chain's run_remote arguments: a JSON object, @FILE, or - for stdin",
        ),
    ] = "{}",
    environment: Env = None,
    deployment: Deployment = None,
    development: Development = False,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="https URL that receives the result, signed"),
    ] = None,
    priority: Annotated[
        int | None, typer.Option(help="0 (default) runs first, then 1, then 2")
    ] = None,
    max_time_in_queue: Annotated[
        int | None,
        typer.Option(
            "--max-time-in-queue",
            help="Seconds the request may wait before it expires (10 to 259200; default 600)",
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(help="Attempts of the chain call, the first included (1-10; default 3)"),
    ] = None,
    initial_delay_ms: Annotated[
        int | None,
        typer.Option(help="Wait after the first failed attempt, doubling (default 1000)"),
    ] = None,
    max_delay_ms: Annotated[
        int | None, typer.Option(help="The longest wait between attempts (default 5000)")
    ] = None,
) -> None:
    """Queue a call of the chain's entrypoint and print the request's id (production unless
    told otherwise). Without --webhook the result is not kept: the status says how it went."""
    model_input: Any = read_data(data, "--input")
    if not isinstance(model_input, dict):
        raise ValueError("--input must be a JSON object: the chain's run_remote arguments")
    request_id = s.client.async_requests.submit(
        s.chain_id(chain),
        model_input,
        environment=environment,
        deployment_id=deployment,
        development=development,
        webhook_endpoint=webhook,
        priority=priority,
        max_time_in_queue_seconds=max_time_in_queue,
        inference_retry_config=_retry_config(max_attempts, initial_delay_ms, max_delay_ms),
    )
    if s.json:
        s.emit_json({"request_id": request_id})
    else:
        typer.echo(request_id)


def _status(answer: AsyncRequestStatusResponse) -> RenderableType:
    out = render.table("FIELD", "VALUE", title=f"async request {answer.request_id}")
    out.add_row("chain", answer.chain_id)
    out.add_row("deployment", answer.deployment_id)
    out.add_row("status", Text(answer.status, style=_STATUS_STYLE.get(answer.status, "")))
    out.add_row("webhook", answer.webhook_status)
    out.add_row("created", render.when(answer.created_at))
    out.add_row("status since", render.when(answer.status_at))
    errors = [Text(f"{e.code}: {e.message}", style="red") for e in answer.errors]
    return Group(out, *errors)


@app.command("status")
@connected
def status(s: Session, request_id: RequestArg) -> None:
    """Show where an async request stands: its status, its webhook's, its errors."""
    answer = s.client.async_requests.status(request_id)
    if s.json:
        s.emit_json(answer)
    else:
        s.out.print(_status(answer))


@app.command("cancel")
@connected
def cancel(s: Session, request_id: RequestArg) -> None:
    """Cancel a queued async request. One that is no longer queued is left as it is: the
    command says why and exits with code 4."""
    answer = s.client.async_requests.cancel(request_id)
    if s.json:
        s.emit_json(answer)
    elif answer.canceled:
        s.out.print(f"canceled {answer.request_id}")
    else:
        s.err.print(f"not canceled: {answer.message}")
    if not answer.canceled:
        raise typer.Exit(int(ExitCode.CONFLICT))


@app.command("queue")
@connected
def queue(
    s: Session,
    chain: ChainArg,
    environment: Env = None,
    deployment: Deployment = None,
    development: Development = False,
) -> None:
    """Count the queued and in-progress async requests of a chain's environment (production
    unless told otherwise), deployment or development deployment."""
    answer = s.client.async_requests.queue_status(
        s.chain_id(chain),
        environment=environment,
        deployment_id=deployment,
        development=development,
    )
    if s.json:
        s.emit_json(answer)
        return
    out = render.table("DEPLOYMENT", "QUEUED", "IN PROGRESS")
    out.add_row(
        answer.deployment_id,
        str(answer.num_queued_requests),
        str(answer.num_in_progress_requests),
    )
    s.out.print(out)
