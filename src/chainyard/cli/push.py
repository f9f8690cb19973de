"""`chainyard push`: import a chain file, pack its directory, deploy it, and optionally wait."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

FAILED = {"BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "BUILD_STOPPED"}


def _fail(console: Console, message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def push(
    path: Annotated[pathlib.Path, typer.Argument(help="The chain's Python file")],
    entrypoint: Annotated[
        str | None, typer.Argument(help="Entrypoint chainlet class, if not marked in the file")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Chain name (default: from the file)")] = None,
    environment: Annotated[
        str | None, typer.Option(help="Promote into this environment once active")
    ] = None,
    promote: Annotated[bool, typer.Option(help="Same as --environment production")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until ACTIVE or failed")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 900.0,
    url: Annotated[str | None, typer.Option(help="Server URL (or CHAINYARD_URL)")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (or CHAINYARD_API_KEY)")] = None,
) -> None:
    """Deploy a truss_chains chain to a chainyard server."""
    from chainyard.chains.discovery import ChainDiscoveryError, discover
    from chainyard.chains.packaging import PackagingError, pack

    console = Console(stderr=True)
    url = (url or os.environ.get("CHAINYARD_URL") or "http://127.0.0.1:8080").rstrip("/")
    api_key = api_key or os.environ.get("CHAINYARD_API_KEY")
    if not api_key:
        _fail(console, "no API key: pass --api-key or set CHAINYARD_API_KEY", 2)
    if promote and environment and environment != "production":
        _fail(console, "--promote means --environment production; give one of them", 2)
    environment = environment or ("production" if promote else None)

    path = path.resolve()
    try:
        info = discover(path, entrypoint)
    except ChainDiscoveryError as exc:
        _fail(console, str(exc), 2)
    root = path.parent
    try:
        archive = pack(root)
    except PackagingError as exc:
        _fail(console, str(exc), 2)
    manifest: dict[str, Any] = {
        "chain_name": name or info.chain_name,
        "entrypoint": info.entrypoint,
        "source_file": path.relative_to(root).as_posix(),
        "chainlets": [c.manifest() for c in info.chainlets],
    }
    if environment:
        manifest["environment"] = environment
    console.print(
        f"pushing chain [bold]{manifest['chain_name']}[/bold] ({len(info.chainlets)} chainlets, "
        f"{len(archive) // 1024} KiB) to {url}"
    )
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        try:
            response = client.post(
                "/v1/chains/deploy",
                data={"manifest": json.dumps(manifest)},
                files={"source": ("source.tar.gz", archive, "application/gzip")},
            )
        except httpx.HTTPError as exc:
            _fail(console, f"cannot reach {url}: {exc}")
        if response.status_code != 200:
            _fail(console, _error_text(response))
        body = response.json()
        chain_id = body["chain_id"]
        deployment = body["chain_deployment"]
        console.print(f"chain {chain_id}, deployment {deployment['id']} ({deployment['status']})")
        if wait:
            _wait(console, client, chain_id, deployment["id"], timeout)
    print(json.dumps({"chain_id": chain_id, "chain_deployment_id": deployment["id"]}))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('code', '')}: {body.get('error', body)}"
    except ValueError:
        return f"{response.status_code}: {response.text[:500]}"


def _table(deployment: dict[str, Any]) -> Table:
    table = Table(title=f"deployment {deployment['id']}: {deployment['status']}")
    table.add_column("chainlet")
    table.add_column("instance type")
    table.add_column("status")
    table.add_column("replicas", justify="right")
    for chainlet in deployment["chainlets"]:
        table.add_row(
            chainlet["name"],
            chainlet["instance_type_name"],
            chainlet["status"],
            str(chainlet["active_replica_count"]),
        )
    return table


def _wait(
    console: Console, client: httpx.Client, chain_id: str, deployment_id: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    path = f"/v1/chains/{chain_id}/deployments/{deployment_id}"
    deployment = client.get(path).json()
    with Live(_table(deployment), console=console, refresh_per_second=4) as live:
        while deployment["status"] not in FAILED | {"ACTIVE"}:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            response = client.get(path)
            if response.status_code != 200:
                _fail(console, _error_text(response))
            deployment = response.json()
            live.update(_table(deployment))
    if deployment["status"] == "ACTIVE":
        console.print("[green]ACTIVE[/green]")
        return
    if deployment["status"] not in FAILED:
        _fail(console, f"still {deployment['status']} after {timeout:.0f}s")
    failing = [c for c in deployment["chainlets"] if c["status"] in FAILED] or deployment[
        "chainlets"
    ]
    console.print(f"[red]{deployment['status']}[/red]")
    for chainlet in failing:
        logs = client.get(f"{path}/chainlets/{chainlet['id']}/logs", params={"limit": 500})
        lines = [entry["message"] for entry in logs.json().get("logs", [])][-20:]
        console.print(f"[bold]{chainlet['name']}[/bold] ({chainlet['status']}), last log lines:")
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)
    sys.exit(1)
