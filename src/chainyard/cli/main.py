"""The `chainyard` command."""

from __future__ import annotations

import gc
import logging
import pathlib
from typing import Annotated, Any

import typer

from chainyard.cli import admin, commands, local_server

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Serve chains on your own machines, and manage them (see docs/cli.md).",
)
app.add_typer(admin.app, name="admin")
commands.register(app)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    data_dir: Annotated[
        pathlib.Path, typer.Option(help="Where the SQLite database, artifacts and keys live")
    ] = pathlib.Path(".chainyard"),
    database_url: Annotated[
        str | None, typer.Option(help="postgresql://... to use PostgreSQL instead of SQLite")
    ] = None,
    runtime: Annotated[str, typer.Option(help="local | simulated | ray")] = "local",
    instance_types: Annotated[
        pathlib.Path | None,
        typer.Option(help="Operator file that extends or replaces the catalogue"),
    ] = None,
    reconcile_interval: Annotated[
        float, typer.Option(help="Seconds between reconciler ticks")
    ] = 1.0,
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Requests per second per API key and endpoint (0: no limit) [100]"),
    ] = None,
    auth_failure_limit: Annotated[
        int | None,
        typer.Option(
            help="Failed authentications one client address may make at once, then 2 per "
            "second (0: no limit; env CHAINYARD_AUTH_FAILURE_LIMIT) [20]"
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="--runtime ray: the Ray cluster (host:port, 'auto'); none starts a Ray"),
    ] = None,
    ray_unschedulable_timeout: Annotated[
        float | None,
        typer.Option(help="--runtime ray: seconds a replica no node can take waits [120]"),
    ] = None,
    max_body_size: Annotated[
        str | None,
        typer.Option(
            help="Largest inference request body, e.g. 512MiB, 1GiB "
            "(env CHAINYARD_MAX_BODY_BYTES) [256MiB]"
        ),
    ] = None,
    python: Annotated[
        list[str] | None,
        typer.Option(
            help="VERSION=PATH: the interpreter for chainlets whose base image asks for that "
            "Python (repeatable; it needs chainyard installed)"
        ),
    ] = None,
    install_apt_packages: Annotated[
        bool,
        typer.Option(
            "--install-apt-packages",
            help="Let builds apt-get install a chainlet's missing apt_requirements on this host",
        ),
    ] = False,
    pass_env: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME of a variable of the server's environment that replicas get too "
            "(repeatable; env CHAINYARD_PASS_ENV=A,B); their environment is otherwise built "
            "from scratch"
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Addresses of reverse proxies whose X-Forwarded-For is believed (comma-"
            "separated); by default none is, so no process can choose the client address "
            "that rate limits count"
        ),
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option(
            help="auto | required | off: run each deployment's replicas in a bubblewrap "
            "sandbox (local runtime; auto: when it works here; env CHAINYARD_SANDBOX) [auto]"
        ),
    ] = None,
    allow_unsandboxed: Annotated[
        bool,
        typer.Option(
            "--allow-unsandboxed",
            help="Serve several workspaces even when replicas run without a sandbox (they "
            "could read each other's secrets: only for workspaces that trust each other)",
        ),
    ] = False,
    allow_private_webhooks: Annotated[
        bool,
        typer.Option(
            "--allow-private-webhooks",
            help="Let async requests' webhooks go to loopback, private and this machine's own "
            "addresses, and over plain http (env CHAINYARD_ALLOW_PRIVATE_WEBHOOKS=1); only where "
            "whoever sends requests may reach the server's network",
        ),
    ] = False,
    async_concurrency_per_deployment: Annotated[
        int | None,
        typer.Option(
            help="Async requests of one deployment that run at once, over all servers, so that "
            "a backlog leaves sync calls their share (env "
            "CHAINYARD_ASYNC_CONCURRENCY_PER_DEPLOYMENT) [16]"
        ),
    ] = None,
    no_async_runner: Annotated[
        bool,
        typer.Option(
            "--no-async-runner",
            help="Run no async requests on this server: it takes them (and serves everything "
            "else), other servers run them (env CHAINYARD_ASYNC_RUNNER=0)",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes serving the API and inference, beside the controller that runs the "
            "runtime and control loops (0: all in one process; env CHAINYARD_WORKERS) "
            "[one per core]"
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Start the server (API, reconciler, runtime)."""

    from chainyard.config import ServerConfig, parse_names, parse_pythons, parse_size

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Migrations run on every start; their step-by-step chatter is noise to an operator.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        body_limit = (
            parse_size(max_body_size, "--max-body-size") if max_body_size is not None else None
        )
        config = ServerConfig.from_env(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database_url,
            runtime=runtime,
            instance_types_file=instance_types,
            reconcile_interval=reconcile_interval,
            ray_address=ray_address,
            ray_unschedulable_timeout=ray_unschedulable_timeout,
            rate_limit_per_second=rate_limit,
            auth_failure_limit=auth_failure_limit,
            max_body_bytes=body_limit,
            pythons=parse_pythons(python) or None,
            install_apt_packages=install_apt_packages or None,
            pass_env=parse_names(pass_env) if pass_env else None,
            sandbox=sandbox,
            allow_unsandboxed=allow_unsandboxed or None,
            allow_private_webhooks=allow_private_webhooks or None,
            async_concurrency_per_deployment=async_concurrency_per_deployment,
            run_async_runner=False if no_async_runner else None,
            workers=workers,
        )
        processes = config.effective_workers
    except ValueError as exc:
        typer.echo(f"chainyard: cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc
    from sqlalchemy.exc import SQLAlchemyError

    from chainyard import server_lock
    from chainyard.domain.errors import ChainyardError

    # Before anything touches the data dir or the store (migrations, the lease, the runtime's
    # reaping of leftover replicas): a second server on a live server's data dir stops here.
    try:
        shared = config.shares_database
        server_lock.hold(config.data_dir, server_id=config.effective_server_id if shared else None)
    except server_lock.DataDirInUse as exc:
        typer.echo(f"chainyard: cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (ValueError, OSError) as exc:
        typer.echo(
            f"chainyard: cannot start: cannot lock data dir {config.data_dir}: {exc}", err=True
        )
        raise typer.Exit(2) from exc
    # A WebSocket chain's messages may be as large as truss's server takes (100 MiB, as
    # gateway/websockets.py relays them). uvicorn believes X-Forwarded-For from 127.0.0.1 by
    # default: on the local runtime that includes every chainlet, which could then pick the address
    # it is throttled under.
    http_options: dict[str, Any] = {
        "access_log": False,
        "ws_max_size": 100 * 2**20,
        "proxy_headers": forwarded_allow_ips is not None,
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    spawned: list[Any] = []
    if processes:
        from chainyard.workers import spawn

        try:
            listener = spawn.bind(host, port)
        except OSError as exc:
            typer.echo(f"chainyard: cannot start: cannot listen on {host}:{port}: {exc}", err=True)
            raise typer.Exit(2) from exc
        # Before the controller is imported and built: the workers import the server's modules
        # meanwhile (workers/spawn.py).
        spawned = [spawn.spawn(listener) for _ in range(processes)]
    try:
        if processes == 0:
            from chainyard.server import create_app

            application = create_app(config)
            key_file = application.state.initial_key_file
            banner = application.state.protections_banner
        else:
            from chainyard.workers.controller import Controller

            try:
                controller = Controller(
                    config,
                    workers=processes,
                    uvicorn_options=http_options,
                    log_level=log_level,
                    spawned=spawned,
                )
            except BaseException:
                spawn.discard(spawned)
                raise
            key_file = controller.initial_key_file
            banner = controller.banner()
    except ChainyardError as exc:
        # e.g. a CHAINYARD_BOOTSTRAP_API_KEY that is too short: a message, not a traceback.
        typer.echo(f"chainyard: cannot start: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except (ValueError, OSError, ImportError, SQLAlchemyError) as exc:
        typer.echo(f"chainyard: cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc
    if key_file is not None:
        typer.echo(f"created an admin API key for workspace 'default' in {key_file}", err=True)
    typer.echo(banner, err=True)
    if config.allow_private_webhooks:
        typer.echo(
            "WARNING: webhooks may go to loopback, private and this machine's own addresses "
            "(--allow-private-webhooks)",
            err=True,
        )
    # So that the CLI on this machine finds that key with no flags, wherever it runs.
    local_server.remember(port, config.data_dir)
    shape = f"{processes} worker{'s' if processes != 1 else ''}" if processes else "one process"
    typer.echo(
        f"chainyard serving on http://{host}:{port} (runtime {config.runtime}, {shape}, "
        f"data in {config.data_dir})",
        err=True,
    )
    if processes == 0:
        import uvicorn

        from chainyard.server import GatewayServer

        GatewayServer(
            uvicorn.Config(
                application, host=host, port=port, log_level=log_level.lower(), **http_options
            ),
            application.state.router,
        ).run()
        return
    from chainyard.workers import controller as controller_process

    controller_process.serve(controller, listener)


def main() -> None:
    try:
        app()
    finally:
        # The interpreter's teardown runs full garbage collections over everything still
        # loaded: half a second for a server process, most of its clean stop. Frozen objects
        # are skipped; the memory goes back with the process anyway.
        gc.freeze()


if __name__ == "__main__":
    main()
