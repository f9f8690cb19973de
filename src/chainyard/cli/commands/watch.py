"""`chainyard watch PATH`: live-patch a chain's development deployment from its source on each
save; and the watching that `chainyard push --watch` does once its push is active."""

from __future__ import annotations

import pathlib
from typing import Annotated

import typer
from rich.markup import escape

from chainyard.cli.interrupt import deferred_interrupt
from chainyard.cli.session import ExitCode, Session, connected
from chainyard.cli.source_changes import SourceTree
from chainyard.cli.watch import (
    DEBOUNCE_MS,
    IDLE_MS,
    STEP_MS,
    ConsoleReport,
    Synced,
    Waker,
    Watcher,
    chainlet_selection,
)
from chainyard.sdk import Client, NotFound


def follow_source(
    s: Session,
    *,
    chain_id: str,
    path: pathlib.Path,
    entrypoint: str | None,
    name: str | None,
    tree: SourceTree,
    synced: Synced,
    chainlets: list[str] | None,
    no_sleep: bool,
) -> None:
    """Watches the chain's folder and patches the development deployment until Ctrl-C."""
    import watchfiles

    from chainyard.cli.chain_check import ImportChecker

    checker = ImportChecker(path, entrypoint, name)
    report = ConsoleReport(s.out, s.err, as_json=s.json, echo=typer.echo)
    # Its own client: it calls from its own thread, while the watcher's requests go on.
    wake_client = Client(s.settings.url, s.settings.api_key, timeout=10) if no_sleep else None
    waker: Waker | None = None
    try:
        checker.prepare()  # warm by the first save
        if wake_client is not None:
            waker = Waker(
                lambda: wake_client.chains.wake(chain_id, development=True),
                on_error=lambda message: s.err.print(
                    f"[yellow]warning:[/yellow] cannot wake the development deployment: "
                    f"{escape(message)}",
                    highlight=False,
                ),
            ).start()
        selection = f" (patching only {', '.join(chainlets)})" if chainlets else ""
        s.note(f"watching {escape(str(tree.root))} for changes{escape(selection)}; Ctrl-C stops")
        # Ctrl-C ends the loop between requests, never inside one (cli/interrupt.py).
        with deferred_interrupt() as stop:
            checker.cancelled = stop.is_set
            watcher = Watcher(
                s.client.development,
                chain_id,
                tree,
                checker,
                report,
                stop,
                synced=synced,
                chainlets=chainlets,
            )
            batches = watchfiles.watch(
                tree.root,
                watch_filter=lambda _change, changed: tree.concerns(changed),
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=stop,
                rust_timeout=IDLE_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            )
            try:
                watcher.run(batches)
            except NotFound as exc:
                s.fail(
                    f"{exc.message}; `chainyard push {path} --watch` makes the chain's "
                    "development deployment",
                    ExitCode.NOT_FOUND,
                )
    finally:
        checker.close()
        if waker is not None:
            waker.stop()
        if wake_client is not None:
            wake_client.close()
    s.note("stopped watching")


@connected
def watch(
    s: Session,
    path: Annotated[pathlib.Path, typer.Argument(help="The chain's Python file")],
    entrypoint: Annotated[
        str | None, typer.Argument(help="Entrypoint chainlet class, if not marked in the file")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Chain name, as pushed (default: from the file)")
    ] = None,
    experimental_chainlet_names: Annotated[
        str | None,
        typer.Option(
            "--experimental-chainlet-names",
            help="Patch only these chainlets (comma-separated); the others keep their code",
        ),
    ] = None,
    no_sleep: Annotated[
        bool,
        typer.Option(
            "--no-sleep",
            help="Wake the development deployment every minute, so that it does not scale to "
            "zero while watching",
        ),
    ] = False,
) -> None:
    """Live-patch the chain's development deployment (made by `push --watch`) on each save."""
    from chainyard.chains.discovery import ChainDiscoveryError, discover
    from chainyard.cli.push import require_api_key

    require_api_key(s)
    path = path.resolve()
    try:
        info = discover(path, entrypoint)
        chainlets = chainlet_selection(
            experimental_chainlet_names, [c.name for c in info.chainlets]
        )
    except (ChainDiscoveryError, ValueError) as exc:
        s.fail(str(exc), ExitCode.USAGE)
    chain_name = name or info.chain_name
    try:
        chain = s.chain(chain_name)
    except NotFound:
        s.fail(
            f"no chain named {chain_name}; `chainyard push {path} --watch` pushes it and watches",
            ExitCode.NOT_FOUND,
        )
    # The deployment's tree is not known here: the first patch sends every file (the server
    # finds what differs, and restarts nothing when nothing does).
    follow_source(
        s,
        chain_id=chain.id,
        path=path,
        entrypoint=entrypoint,
        name=chain_name,
        tree=SourceTree(path.parent),
        synced=Synced(tree=None, digest=None),
        chainlets=chainlets,
        no_sleep=no_sleep,
    )
