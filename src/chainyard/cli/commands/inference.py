"""`chainyard run` and `chainyard wake`: call a chain as its clients do."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Annotated, Any

import typer

from chainyard.cli.commands.chains import ChainArg
from chainyard.cli.session import Session, connected

Env = Annotated[str | None, typer.Option("--env", "-e", help="Environment (default production)")]
Deployment = Annotated[
    str | None, typer.Option("--deployment", "-d", help="Call this deployment instead")
]


def read_data(text: str) -> Any:
    """JSON given inline, as @FILE, or as '-' for stdin."""
    if text == "-":
        raw = sys.stdin.read()
    elif text.startswith("@"):
        raw = pathlib.Path(text[1:]).read_text(encoding="utf-8")
    else:
        raw = text
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"--data is not valid JSON: {exc}") from exc


@connected
def run(
    s: Session,
    chain: ChainArg,
    data: Annotated[
        str, typer.Option("--data", help="Input as JSON, @FILE, or - for stdin")
    ] = "{}",
    environment: Env = None,
    deployment: Deployment = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the answer")] = 600.0,
) -> None:
    """Call the chain's entrypoint (run_remote) and print its answer as JSON."""
    payload = read_data(data)
    answer = s.client.chains.run_remote(
        s.chain_id(chain),
        payload,
        environment=environment,
        deployment_id=deployment,
        timeout=timeout,
    )
    typer.echo(json.dumps(answer, indent=None if s.json else 2))


@connected
def wake(
    s: Session, chain: ChainArg, environment: Env = None, deployment: Deployment = None
) -> None:
    """Start a scaled-to-zero deployment without sending it a request."""
    s.client.chains.wake(s.chain_id(chain), environment=environment, deployment_id=deployment)
    if s.json:
        s.emit_json({"ok": True})
    else:
        s.out.print("waking up")
