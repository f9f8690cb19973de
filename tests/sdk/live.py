"""A real chainyard server on a loopback port, in a thread, for SDK and CLI tests.

Real HTTP end to end: uvicorn, the real app, store (SQLite), reconciler and autoscaler, on the
simulated runtime with short delays. The simulated runtime has no processes to answer
inference, so its replicas point back at an echo route on the same server: `run_remote` goes
through the real gateway and comes back with what it was sent and which replica answered.
Chainlets whose names start with "Broken" fail their build; those whose names contain "Slow"
take SLOW_BUILD seconds to build (for tests that must see a promotion in progress).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse

from chainyard.runtime.base import (
    BuildRequest,
    BuildResult,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaState,
)
from chainyard.runtime.simulated import SimulatedRuntime
from chainyard.server import create_app
from chainyard.services.context import Core
from tests.support.server import ADMIN_KEY, fast_config

FAIL_BUILD = "^Broken"
SLOW_BUILD = 1.0


class EchoRuntime(SimulatedRuntime):
    """Simulated replicas whose address is the echo route of the server they belong to."""

    base_url = ""

    async def build(self, request: BuildRequest) -> BuildResult:
        if "Slow" in request.chainlet_name:
            await asyncio.sleep(SLOW_BUILD)
        return await super().build(request)

    def _state(self, spec: ReplicaSpec, phase: ReplicaPhase, message: str | None) -> ReplicaState:
        state = super()._state(spec, phase, message)
        address = f"{self.base_url}/_echo/{state.deployment_id}/{state.chainlet_id}"
        return dataclasses.replace(state, address=address)


@dataclasses.dataclass
class LiveServer:
    url: str
    key: str
    server: uvicorn.Server
    thread: threading.Thread
    # The server's store and data dir, for tests that set up rows no endpoint writes.
    core: Core


def hello_manifest(name: str, *, environment: str | None = "production") -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "chain_name": name,
        "entrypoint": "HelloWorld",
        "chainlets": [
            {"name": "HelloWorld", "dependencies": ["RandInt"]},
            {"name": "RandInt"},
        ],
    }
    if environment is not None:
        manifest["environment"] = environment
    return manifest


def manifest_with(name: str, dependency: str, *, environment: str | None = None) -> dict[str, Any]:
    """The hello chain with its dependency renamed: "BrokenRandInt" fails its build,
    "SlowRandInt" builds slowly, "BrokenSlowRandInt" fails slowly."""
    manifest = hello_manifest(name, environment=environment)
    manifest["chainlets"] = [
        {"name": "HelloWorld", "dependencies": [dependency]},
        {"name": dependency},
    ]
    return manifest


def start(tmp: pathlib.Path) -> LiveServer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    config = fast_config(
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'chainyard.db'}",
        port=port,
        reconcile_interval=0.02,
        sim_fail_build=FAIL_BUILD,
    )
    runtime = EchoRuntime(build_delay=0.02, ready_delay=0.02, fail_build=FAIL_BUILD)
    runtime.base_url = url
    app = create_app(config, runtime=runtime)

    @app.post("/_echo/{deployment_id}/{chainlet_id}/v1/models/model:predict")
    async def echo(deployment_id: str, chainlet_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "deployment_id": deployment_id,
                "chainlet_id": chainlet_id,
                "input": json.loads(body) if body else None,
            }
        )

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and app.state.ready):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return LiveServer(url=url, key=ADMIN_KEY, server=server, thread=thread, core=app.state.core)


def stop(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(timeout=30)


def serve(tmp: pathlib.Path) -> Iterator[LiveServer]:
    live = start(tmp)
    try:
        yield live
    finally:
        stop(live)
