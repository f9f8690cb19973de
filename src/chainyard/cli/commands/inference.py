"""`chainyard run` and `chainyard wake`: call a chain as its clients do."""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer

from chainyard.cli.commands.chains import ChainArg
from chainyard.cli.session import Session, connected

Env = Annotated[str | None, typer.Option("--env", "-e", help="Environment (default production)")]
Deployment = Annotated[
    str | None, typer.Option("--deployment", "-d", help="Call this deployment instead")
]
Development = Annotated[
    bool,
    typer.Option("--development", help="Call the chain's development deployment instead"),
]


def read_data(text: str, option: str = "--data") -> Any:
    """JSON given inline, as @FILE, or as '-' for stdin; `option` names it in errors."""
    if text == "-":
        raw = sys.stdin.read()
    elif text.startswith("@"):
        raw = pathlib.Path(text[1:]).read_text(encoding="utf-8")
    else:
        raw = text
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{option} is not valid JSON: {exc}") from exc


@connected
def run(
    s: Session,
    chain: ChainArg,
    data: Annotated[
        str, typer.Option("--data", help="Input as JSON, @FILE, or - for stdin")
    ] = "{}",
    environment: Env = None,
    deployment: Deployment = None,
    development: Development = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=1,
            help="Seconds to wait for the answer (for each chunk of a stream)",
        ),
    ] = 600.0,
) -> None:
    """Call the chain's entrypoint (run_remote) and print its answer as JSON; a streaming
    entrypoint's chunks are printed as they arrive."""
    payload = read_data(data)
    with s.client.chains.stream_remote(
        s.chain_id(chain),
        payload,
        environment=environment,
        deployment_id=deployment,
        development=development,
        timeout=timeout,
    ) as answer:
        if answer.is_stream:
            _print_stream(answer)
            return
        body = b"".join(answer)
    value: Any = None
    if body:
        try:
            value = json.loads(body)
        except ValueError:
            value = body.decode(errors="replace")
    typer.echo(json.dumps(value, indent=None if s.json else 2))


def _print_stream(chunks: Iterable[bytes]) -> None:
    """The stream's bytes, exactly and as they come (flushed per chunk: a pipe sees them too)."""
    out = sys.stdout.buffer
    last = b""
    for chunk in chunks:
        out.write(chunk)
        out.flush()
        last = chunk[-1:] or last
    if sys.stdout.isatty() and last not in (b"", b"\n"):
        out.write(b"\n")  # keep the shell prompt off the last line
        out.flush()


@connected
def wake(
    s: Session,
    chain: ChainArg,
    environment: Env = None,
    deployment: Deployment = None,
    development: Development = False,
) -> None:
    """Start a scaled-to-zero deployment without sending it a request."""
    s.client.chains.wake(
        s.chain_id(chain),
        environment=environment,
        deployment_id=deployment,
        development=development,
    )
    if s.json:
        s.emit_json({"ok": True})
    else:
        s.out.print("waking up")
