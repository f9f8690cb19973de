"""The three systems bench/data_plane.py measures, each serving the same two-step chain
(bench/chains/two_step.py: Entry calls Dep once) and its streaming twin (two_step_stream.py):

- **floor**: two bare uvicorn processes (uvloop, httptools), raw ASGI apps written here; Entry calls
  Dep over one aiohttp keep-alive session. Nothing between the client and the code but HTTP.
- **chainyard**: a real `chainyard serve` (autoscale.py's `Chainyard`: local runtime, temporary
  data dir, SQLite, the sandbox default) with `--rate-limit 0`, both chains pushed with the CLI and
  pinned to one replica per chainlet.
- **Ray Serve**: a local Ray in a child process (this file run as `ray`): proxy -> Entry
  deployment -> DeploymentHandle -> Dep deployment, one replica each, `max_ongoing_requests=64`.

Each is a `Target`: a URL for the plain chain, one for the streaming chain, and the headers to send.
Run as a program, this file is one of the child processes: `floor-dep`, `floor-entry` or `ray`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import httpx
import psutil

HERE = pathlib.Path(__file__).resolve().parent
TWO_STEP = HERE / "chains" / "two_step.py"
TWO_STEP_STREAM = HERE / "chains" / "two_step_stream.py"
# As in the chains: 64 calls at a time per replica, and the streamed answer's shape.
CONCURRENCY = 64
CHUNKS = 4
CHUNK_GAP_SECONDS = 0.05
X = 41
STREAMED = "".join(f"{X + i};" for i in range(CHUNKS)).encode()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclasses.dataclass
class Target:
    name: str
    url: str  # POST {"x": 41[, "pad": ...]} -> {"y": 42, "pad": len(pad)}
    stream_url: str  # POST {"x": 41} -> "41;42;43;44;", one chunk every CHUNK_GAP_SECONDS
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    pids: list[int] = dataclasses.field(default_factory=list)  # its processes' roots


def label(process: psutil.Process) -> str:
    """What a process of a system is, in a word: its CPU time is reported under it."""
    command = process.cmdline()
    text = " ".join(command)
    if text.startswith("ray::"):
        # An actor's title also names the method running now ("ray::ProxyActor.ready").
        return command[0].split(".")[0]
    if "chainyard.chains.host" in text:
        # The local runtime's host forks the replicas: same command line, one level down.
        parent = process.parent()
        return "replicas" if parent and parent.cmdline() == command else "replica host"
    if "chainyard.workers.worker" in text:
        return "server workers"
    if "chainyard.cli.main" in text:
        return "server"
    for role in ("floor-entry", "floor-dep"):
        if role in command:
            return role
    return pathlib.Path(command[0]).name if command else process.name()


def cpu_seconds(roots: list[int]) -> dict[int, tuple[str, float]]:
    """User + system CPU seconds of every process under `roots`, by process id."""
    found: dict[int, tuple[str, float]] = {}
    for root in roots:
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(root)
            for process in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    found[process.pid] = (label(process), times.user + times.system)
    return found


def cpu_used(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds used between two `cpu_seconds`, summed by label."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        spent = seconds - before.get(pid, (name, 0.0))[1]
        used[name] = used.get(name, 0.0) + spent
    return {name: round(value, 3) for name, value in sorted(used.items()) if value > 0}


def check(target: Target, pad: int) -> None:
    """One call of each chain, its answer checked: a benchmark of wrong answers measures nothing."""
    body = {"x": X, "pad": "a" * pad} if pad else {"x": X}
    response = httpx.post(target.url, json=body, headers=target.headers, timeout=60)
    if response.status_code != 200 or response.json() != {"y": X + 1, "pad": pad}:
        raise RuntimeError(f"{target.name}: {response.status_code} {response.text[:300]}")
    response = httpx.post(target.stream_url, json={"x": X}, headers=target.headers, timeout=60)
    if response.status_code != 200 or response.content != STREAMED:
        raise RuntimeError(f"{target.name} stream: {response.status_code} {response.text[:300]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not come up:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- floor ----------------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer_json(send: Send, value: Any) -> None:
    body = json.dumps(value).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_stream(send: Send, chunks: AsyncIterator[bytes]) -> None:
    # No content-length: uvicorn sends it chunked, each `send` on the wire at once.
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def floor_dep(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    x = json.loads(await _read_body(receive))["x"]
    if scope["path"] != "/stream":
        await _answer_json(send, x + 1)
        return

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(CHUNKS):
            if i:
                await asyncio.sleep(CHUNK_GAP_SECONDS)
            yield f"{x + i};".encode()

    await _answer_stream(send, chunks())


class FloorEntry:
    """Entry: parses the body, calls Dep with `x` over a keep-alive aiohttp session."""

    def __init__(self, dep_url: str) -> None:
        self.dep_url = dep_url.rstrip("/")
        self.session: Any = None

    async def _start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def _close(self) -> None:
        await self.session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self._start, self._close)
            return
        body = json.loads(await _read_body(receive))
        payload = json.dumps({"x": body["x"]}).encode()
        headers = {"content-type": "application/json"}
        if scope["path"] == "/stream":
            async with self.session.post(
                f"{self.dep_url}/stream", data=payload, headers=headers
            ) as response:

                async def chunks() -> AsyncIterator[bytes]:
                    async for chunk in response.content.iter_any():
                        yield chunk

                await _answer_stream(send, chunks())
            return
        async with self.session.post(f"{self.dep_url}/", data=payload, headers=headers) as response:
            y = json.loads(await response.read())
        await _answer_json(send, {"y": y, "pad": len(body.get("pad", ""))})


def serve_floor(role: str, port: int, dep_url: str | None) -> None:
    import uvicorn

    app: Any = floor_dep if role == "floor-dep" else FloorEntry(dep_url or "")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


@contextlib.contextmanager
def floor(work_dir: pathlib.Path) -> Iterator[Target]:
    dep_port, entry_port = free_port(), free_port()
    dep_url = f"http://127.0.0.1:{dep_port}"
    entry_url = f"http://127.0.0.1:{entry_port}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for role, port, extra in (
            ("floor-dep", dep_port, []),
            ("floor-entry", entry_port, ["--dep", dep_url]),
        ):
            log = work_dir / f"{role}.log"
            with open(log, "ab") as out:
                process = subprocess.Popen(
                    [sys.executable, __file__, role, "--port", str(port), *extra],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            _wait_listening(port, process, log)
        yield Target(
            "floor", f"{entry_url}/", f"{entry_url}/stream", pids=[p.pid for p in processes]
        )
    finally:
        for process in reversed(processes):
            _stop(process)


# --- chainyard ------------------------------------------------------------------------------------


@contextlib.contextmanager
def chainyard(work_dir: pathlib.Path, workers: int, *, direct: bool = True) -> Iterator[Target]:
    """A `chainyard serve --workers N` with both chains pushed and promoted, one replica per
    chainlet (N = 0: the API, gateway and control loops in one process). `direct=False`: Entry
    calls Dep through the gateway (CHAINYARD_DIRECT_DEPENDENCY_CALLS=0), as before direct
    dependency calls; its name ends in `-gw`."""
    from autoscale import API_KEY, Chainyard

    extra = ["--rate-limit", "0", "--workers", str(workers)]
    name = f"chainyard-w{workers}" + ("" if direct else "-gw")
    env = {} if direct else {"CHAINYARD_DIRECT_DEPENDENCY_CALLS": "0"}
    with Chainyard(work_dir, None, extra_args=extra, env=env) as cy:
        try:
            ids = {}
            for chain_file, chain_name in ((TWO_STEP, "two-step"), (TWO_STEP_STREAM, "stream")):
                pushed = cy.push(chain_file, chain_name)
                ids[chain_name] = pushed["chain_id"]
                deployment = cy.api.get(
                    f"/v1/chains/{pushed['chain_id']}/deployments/{pushed['chain_deployment_id']}"
                ).json()
                # One replica each, as the floor's and Ray's; and none scales to zero mid-run.
                for chainlet in deployment["chainlets"]:
                    cy.autoscaling(
                        pushed["chain_id"],
                        chainlet["name"],
                        {"min_replica": 1, "max_replica": 1},
                    )
        except BaseException:
            print(f"{name} server log (tail):\n{cy.log.read_text()[-3000:]}", file=sys.stderr)
            raise
        base = f"{cy.url}/chains/{{}}/environments/production/run_remote"
        yield Target(
            name,
            base.format(ids["two-step"]),
            base.format(ids["stream"]),
            {"Authorization": f"Api-Key {API_KEY}"},
            {
                "workers": workers,
                "serve_args": extra,
                "url": cy.url,
                "direct_dependency_calls": direct,
            },
            [cy.process.pid] if cy.process else [],
        )


# --- Ray Serve ------------------------------------------------------------------------------------


def _ray_apps() -> tuple[Any, Any]:
    """The chain as Serve deployments. Defined in a function, in the child's __main__, so that Ray
    ships them to its workers by value."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import StreamingResponse

    @serve.deployment(max_ongoing_requests=CONCURRENCY)
    class Dep:
        async def __call__(self, x: int) -> int:
            return x + 1

    @serve.deployment(max_ongoing_requests=CONCURRENCY)
    class Entry:
        def __init__(self, dep: Any) -> None:
            self.dep = dep

        async def __call__(self, request: Request) -> dict[str, int]:
            body = await request.json()
            return {"y": await self.dep.remote(body["x"]), "pad": len(body.get("pad", ""))}

    @serve.deployment(max_ongoing_requests=CONCURRENCY)
    class StreamDep:
        async def __call__(self, x: int) -> AsyncIterator[str]:
            for i in range(CHUNKS):
                if i:
                    await asyncio.sleep(CHUNK_GAP_SECONDS)
                yield f"{x + i};"

    @serve.deployment(max_ongoing_requests=CONCURRENCY)
    class StreamEntry:
        def __init__(self, dep: Any) -> None:
            self.dep = dep

        async def __call__(self, request: Request) -> StreamingResponse:
            body = await request.json()
            chunks = self.dep.options(stream=True).remote(body["x"])
            return StreamingResponse(chunks, media_type="text/plain")

    return Entry.bind(Dep.bind()), StreamEntry.bind(StreamDep.bind())


def serve_ray(port: int, ready_file: pathlib.Path, cpus: int) -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import logging

    import ray
    from ray import serve

    # A short path: Ray's Unix sockets live under it.
    temp_dir = tempfile.mkdtemp(prefix="cy-ray-", dir="/tmp")
    try:
        ray.init(
            address="local",  # a cluster of its own, never one found through RAY_ADDRESS
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp_dir,
            object_store_memory=256 * 1024 * 1024,
            logging_level="WARNING",
        )
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        plain, streaming = _ray_apps()
        serve.run(plain, name="two_step", route_prefix="/two_step")
        serve.run(streaming, name="stream", route_prefix="/stream")
        ready_file.write_text(ray.__version__)
        # Until the parent closes our stdin (or dies): Ray's own SIGTERM handler would end this
        # process without the cleanup below.
        sys.stdin.buffer.read()
    finally:
        # ray.shutdown() leaves the raylet's agents (dashboard, runtime env) running, orphaned:
        # whatever it started and leaves is ended here, by process id.
        started = psutil.Process().children(recursive=True)
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        for process in started:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(started, timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_serve(work_dir: pathlib.Path, cpus: int) -> Iterator[Target]:
    port = free_port()
    ready = work_dir / "ray-ready"
    log = work_dir / "ray.log"
    command = [sys.executable, __file__, "ray", "--port", str(port), "--ready-file", str(ready)]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*command, "--cpus", str(cpus)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray Serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        yield Target(
            "ray",
            f"{url}/two_step",
            f"{url}/stream",
            info={"ray_version": ready.read_text(), "ray_init_num_cpus": cpus},
            pids=[process.pid],
        )
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            _stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("floor-dep", "floor-entry", "ray"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dep")
    parser.add_argument("--ready-file", type=pathlib.Path)
    parser.add_argument("--cpus", type=int, default=8)
    args = parser.parse_args()
    if args.role == "ray":
        serve_ray(args.port, args.ready_file, args.cpus)
    else:
        serve_floor(args.role, args.port, args.dep)


if __name__ == "__main__":
    main()
