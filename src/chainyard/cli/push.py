"""`chainyard push`: import a chain file, pack its directory, deploy it, and optionally wait.

The last line on stdout is always one JSON object, {"chain_id", "chain_deployment_id",
"status"}, so that scripts can read what was pushed whatever the output format. With `--watch`
that line comes once the development deployment is active, and the patch lines follow it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import typer

from chainyard.cli.session import ExitCode, Session, connected
from chainyard.sdk import DeploymentFailed, NotFound, WaitError

FAILED = {"BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "BUILD_STOPPED"}
_LOG_LINES = 20


@connected
def push(
    s: Session,
    path: Annotated[pathlib.Path, typer.Argument(help="The chain's Python file")],
    entrypoint: Annotated[
        str | None, typer.Argument(help="Entrypoint chainlet class, if not marked in the file")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Chain name (default: from the file)")] = None,
    environment: Annotated[
        str | None, typer.Option(help="Promote into this environment once active")
    ] = None,
    promote: Annotated[bool, typer.Option(help="Same as --environment production")] = False,
    wait: Annotated[
        bool, typer.Option(help="Show progress until ACTIVE (and promoted) or failed")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 900.0,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Push the chain's development deployment, wait for it, then live-patch it on "
            "each save until Ctrl-C",
        ),
    ] = False,
    experimental_watch_chainlets: Annotated[
        str | None,
        typer.Option(
            "--experimental-watch-chainlets",
            "--experimental-watch-chainlet-names",
            help="Patch only these chainlets (comma-separated; implies --watch)",
        ),
    ] = None,
    watch_no_sleep: Annotated[
        bool,
        typer.Option(
            "--watch-no-sleep",
            help="With --watch: wake the development deployment every minute, so that it does "
            "not scale to zero while watching",
        ),
    ] = False,
) -> None:
    """Deploy a truss_chains chain to a chainyard server."""
    # Discovery imports truss_chains and the user's chain: only this command pays for it.
    from chainyard.chains.discovery import ChainDiscoveryError, discover
    from chainyard.chains.packaging import PackagingError, pack
    from chainyard.cli.chain_check import manifest_of
    from chainyard.cli.source_changes import SourceTree, digest
    from chainyard.cli.watch import chainlet_selection

    require_api_key(s)
    if promote and environment and environment != "production":
        s.fail("--promote means --environment production; give one of them", ExitCode.USAGE)
    watch = watch or experimental_watch_chainlets is not None
    if watch_no_sleep and not watch:
        s.fail("--watch-no-sleep requires --watch", ExitCode.USAGE)
    if watch and (environment or promote):
        s.fail(
            "--watch pushes the chain's development deployment, which is in no environment "
            "and cannot be promoted: leave out --environment and --promote",
            ExitCode.USAGE,
        )
    environment = environment or ("production" if promote else None)

    path = path.resolve()
    tree = SourceTree(path.parent)
    try:
        info = discover(path, entrypoint)
        chainlets = chainlet_selection(
            experimental_watch_chainlets, [c.name for c in info.chainlets]
        )
        # Scanned before packing: a file saved in between is newer in the archive than in the
        # scan, so the watcher sends it again (never the other way round).
        pushed_tree = tree.scan() if watch else None
        archive = pack(path.parent)
    except (ChainDiscoveryError, PackagingError, ValueError) as exc:
        s.fail(str(exc), ExitCode.USAGE)
    manifest = manifest_of(info, path, name)
    if environment:
        manifest["environment"] = environment
    s.note(
        f"pushing {'the development deployment of ' if watch else ''}chain "
        f"[bold]{manifest['chain_name']}[/bold] ({len(info.chainlets)} chainlets, "
        f"{len(archive) // 1024} KiB) to {s.settings.url}"
    )
    # --watch: the development push (the SDK marks the manifest `development`).
    send = s.client.development.push if watch else s.client.chains.deploy
    deployed = send(manifest, source=archive, timeout=120)
    chain_id, deployment = deployed.chain_id, deployed.chain_deployment
    s.note(f"chain {chain_id}, deployment {deployment.id} ({deployment.status.value})")
    # On stderr in every output format: a script reads stdout, a person must see these.
    for warning in deployed.warnings:
        s.err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    status = deployment.status.value
    if wait or watch:
        status = _wait(s, chain_id, deployment.id, environment, timeout)
    typer.echo(
        json.dumps({"chain_id": chain_id, "chain_deployment_id": deployment.id, "status": status})
    )
    if watch:
        from chainyard.cli.commands.watch import follow_source
        from chainyard.cli.watch import Synced

        follow_source(
            s,
            chain_id=chain_id,
            path=path,
            entrypoint=entrypoint,
            name=manifest["chain_name"],
            tree=tree,
            # What the deployment runs: the tree as scanned, and the digest of the bytes sent.
            synced=Synced(tree=pushed_tree, digest=digest(archive)),
            chainlets=chainlets,
            no_sleep=watch_no_sleep,
        )


def require_api_key(s: Session) -> None:
    if not s.settings.api_key:
        s.fail(
            "no API key: pass --api-key, set CHAINYARD_API_KEY, or put api_key in "
            "~/.chainyard.toml (a server on this machine lends its initial key: run the "
            "command where its data dir is, or set CHAINYARD_DATA_DIR)",
            ExitCode.AUTH,
        )


def _wait(
    s: Session, chain_id: str, deployment_id: str, environment: str | None, timeout: float
) -> str:
    from chainyard.cli import progress

    try:
        if environment is None:
            done = progress.watch_deployment(
                s.client, s.err, chain_id, deployment_id, timeout=timeout, quiet=s.quiet_progress
            )
            status = done.status.value
        else:
            env = progress.watch_promotion(
                s.client,
                s.err,
                chain_id,
                environment,
                deployment_id=deployment_id,
                timeout=timeout,
                quiet=s.quiet_progress,
            )
            assert env.current_deployment is not None
            status = env.current_deployment.status.value
    except WaitError as exc:
        if isinstance(exc, DeploymentFailed):
            _show_failure(s, chain_id, deployment_id)
        raise
    s.note(f"[green]{status}[/green]" + (f" in {environment}" if environment else ""))
    return status


def _show_failure(s: Session, chain_id: str, deployment_id: str) -> None:
    """The failed chainlets' last log lines: usually the build or start error itself."""
    try:
        deployment = s.client.deployments.get(chain_id, deployment_id)
    except NotFound:
        return
    s.err.print(f"[red]{deployment.status.value}[/red]")
    failing = [c for c in deployment.chainlets if c.status.value in FAILED] or deployment.chainlets
    for chainlet in failing:
        logs = s.client.deployments.logs(chain_id, deployment_id, chainlet.id, limit=500)
        s.err.print(f"[bold]{chainlet.name}[/bold] ({chainlet.status.value}), last log lines:")
        for entry in logs.logs[-_LOG_LINES:]:
            s.err.print(f"  {entry.message}", markup=False, highlight=False)
