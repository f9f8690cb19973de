"""What the fuzz run needs besides schemathesis: replicas that answer, and real ids to aim at.

The simulated runtime has no processes, so a `run_remote` that reaches a replica would have
nowhere to go. `EchoRuntime` points its replicas at `EchoServer`, a small HTTP server that answers
a JSON input with itself (and a non-JSON one with a chainlet-like 400), so inference requests go
through the real gateway and come back.

Generated ids almost never name anything, so on their own every request would stop at a 404.
`World` deploys chains first and `World.aim` points part of the generated requests at them: path
parameters, the Host header of Baseten's host-based inference routes, and the few body fields
that name things (a deployment to promote, chainlet names, instance type ids); the async
routes that name a request get one of the stable chain. The choice is a function of the
generated case, so a run is as reproducible as the generation is.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import pathlib
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import schemathesis
import uvicorn

from chainyard.runtime.base import ReplicaPhase, ReplicaSpec, ReplicaState
from chainyard.runtime.simulated import SimulatedRuntime
from chainyard.server import create_app
from tests.support.server import ADMIN_KEY, fast_config, hello_manifest

INFERENCE_TAG = "inference"
ADMIN_PREFIX = ADMIN_KEY.split(".", 1)[0]


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            json.loads(raw or b"null")
        except ValueError:
            status, body = 400, json.dumps({"error": "the input is not JSON"}).encode()
        else:
            status, body = 200, raw or b"null"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per fuzz request would bury the report


class EchoServer:
    """A loopback HTTP server, in a thread, standing in for every replica."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class EchoRuntime(SimulatedRuntime):
    """The simulated runtime, with every replica's address at an `EchoServer`."""

    def __init__(self, echo_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.echo_url = echo_url

    def _state(self, spec: ReplicaSpec, phase: ReplicaPhase, message: str | None) -> ReplicaState:
        return dataclasses.replace(super()._state(spec, phase, message), address=self.echo_url)


def openapi_document() -> dict[str, Any]:
    """The document the server publishes at /openapi.json, without starting a server (the test
    module needs it at collection time, to make one test per operation)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(fast_config(data_dir=pathlib.Path(tmp)))
        try:
            # Through JSON, as the server sends it (no tuples, string keys only).
            document: dict[str, Any] = json.loads(json.dumps(app.openapi()))
            return document
        finally:
            app.state.core.db.dispose()


class LiveServer:
    """The real app over real HTTP (uvicorn, in a thread) on `database_url`, the simulated
    runtime answering through `echo_url`, and no rate limit (the fuzzer's bursts would otherwise
    be 429s, which tests/api/test_limits.py covers)."""

    def __init__(self, data_dir: pathlib.Path, database_url: str, echo_url: str) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        config = fast_config(
            data_dir=data_dir,
            database_url=database_url,
            port=port,
            reconcile_interval=0.02,
            rate_limit_per_second=0,
            # Its requests with a wrong key would otherwise meet the failed-authentication limit
            # (429s instead of the 401s it checks); tests/api/test_auth_throttle.py covers it.
            auth_failure_limit=0,
        )
        runtime = EchoRuntime(echo_url, build_delay=0.01, ready_delay=0.01)
        self.app = create_app(config, runtime=runtime)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, ws="none")
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self._server.started and self.app.state.ready):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fuzz server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@dataclasses.dataclass
class Chain:
    id: str
    deployment_ids: list[str]
    # deployment id -> its chainlets' ids
    chainlet_ids: dict[str, list[str]]
    chainlet_names: list[str]
    environments: list[str]


def _share(case: schemathesis.Case, nth: int) -> int:
    """A number in [0, 100) that depends only on what was generated for `case`, so that a
    failing case replays alike; `nth` (the how-manieth request to its operation) decides only
    for cases that carry no generated input at all."""
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) else None
    inputs = (case.path_parameters or None, case.query or None, body)
    seed = inputs if any(x is not None for x in inputs) else nth
    text = repr((case.operation.label, case.method, seed, case.media_type))
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def _pick(options: list[str], share: int) -> str:
    return options[share % len(options)]


class World:
    """The chains, secrets and keys the fuzz run aims at, made through the API itself."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        self._names = itertools.count()
        self.stable: Chain | None = None
        self.playground: Chain | None = None
        self.instance_types: list[str] = []
        # An async request of the stable chain, for the routes that name one.
        self.async_request = ""
        # Requests sent per operation label, how many were aimed at real things, and the
        # statuses that came back per operation.
        self.sent: collections.Counter[str] = collections.Counter()
        self.aimed: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[tuple[str, int]] = collections.Counter()
        self._seen: collections.Counter[str] = collections.Counter()

    # -- making things ------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.client.request(method, path, json=body, headers=self.headers)
        assert response.status_code == 200, (method, path, response.text)
        result: dict[str, Any] = response.json()
        return result

    def _name(self, what: str) -> str:
        return f"fuzz-{what}-{next(self._names)}"

    def deploy_chain(self, *, environment: str | None = "production") -> Chain:
        manifest = hello_manifest(self._name("chain"), environment)
        answer = self._call("POST", "/v1/chains/deploy", manifest)
        deployment = answer["chain_deployment"]
        return Chain(
            id=answer["chain_id"],
            deployment_ids=[deployment["id"]],
            chainlet_ids={deployment["id"]: [c["id"] for c in deployment["chainlets"]]},
            chainlet_names=[c["name"] for c in deployment["chainlets"]],
            environments=["production"] if environment else [],
        )

    def new_deployment(self, chain: Chain) -> str:
        manifest = hello_manifest(environment=None)
        del manifest["chain_name"]
        manifest["chain_id"] = chain.id
        deployment = self._call("POST", "/v1/chains/deploy", manifest)["chain_deployment"]
        chain.chainlet_ids[deployment["id"]] = [c["id"] for c in deployment["chainlets"]]
        return str(deployment["id"])

    def new_secret(self) -> str:
        name = self._name("secret")
        self._call("POST", "/v1/secrets", {"name": name, "value": "v"})
        return name

    def new_key_prefix(self) -> str:
        key = self._call("POST", "/v1/api_keys", {"type": "WORKSPACE_INVOKE"})["api_key"]
        return str(key).split(".", 1)[0]

    def new_async_request(self, chain: Chain) -> str:
        path = f"/chains/{chain.id}/deployment/{chain.deployment_ids[0]}/async_run_remote"
        body = {"model_input": {}}
        response = self.client.post(path, json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["request_id"])

    def seed(self) -> None:
        self.stable = self.deploy_chain()
        self.playground = self.deploy_chain()
        self._call("POST", f"/v1/chains/{self.playground.id}/environments", {"name": "staging"})
        self.playground.environments.append("staging")
        self.playground.deployment_ids.append(self.new_deployment(self.playground))
        self.new_secret()
        # A development deployment too, so that the development paths reach one.
        development = {**hello_manifest(environment=None), "development": True}
        del development["chain_name"]
        development["chain_id"] = self.stable.id
        self._call("POST", "/v1/chains/deploy", development)
        self.async_request = self.new_async_request(self.stable)
        answer = self._call("GET", "/v1/instance_types")
        self.instance_types = [t["id"] for t in answer["instance_types"]]

    # -- aiming generated requests --------------------------------------------------------------

    def aim(self, case: schemathesis.Case) -> dict[str, str]:
        """Points `case` at real things part of the time; returns the headers to send with it."""
        assert self.stable is not None and self.playground is not None
        label = case.operation.label
        self._seen[label] += 1
        share = _share(case, self._seen[label])
        method = case.method.upper()
        params = case.path_parameters if case.path_parameters is not None else {}
        if method == "DELETE" and params.get("api_key_prefix") == ADMIN_PREFIX:
            # The run's own key: deleting it would turn every later request into a 401.
            params["api_key_prefix"] = self.new_key_prefix()
        # A few requests go without a valid key, so that 401 answers are checked too.
        if share < 3:
            return {}
        if share < 6:
            return {"Authorization": "Bearer fuzz0000.not-a-key"}
        headers = dict(self.headers)
        if share < 30:
            return headers  # as generated: mostly unknown ids
        inference = INFERENCE_TAG in (case.operation.tags or ())
        # Inference and half the reads go to the stable chain, which no request aims to change,
        # so that its run_remote always has a deployment to reach; changes go to the playground.
        stable = inference or (method == "GET" and share % 2 == 0)
        chain = self.stable if stable else self.playground
        deletes_chain = "chain_deployment_id" not in params and "request_id" not in params
        if method == "DELETE" and deletes_chain and "chain_id" in params:
            chain = self.deploy_chain()  # deleting the chain itself
        deployment = _pick(chain.deployment_ids, share)
        if method == "DELETE" and "chain_deployment_id" in params:
            deployment = self.new_deployment(chain)
        values = {
            "chain_id": chain.id,
            "env_name": _pick(chain.environments, share),
            "chain_deployment_id": deployment,
            "deployment_id": deployment,
            "chainlet_id": _pick(chain.chainlet_ids[deployment], share),
            "request_id": self.async_request,
        }
        aimed = False
        for name in params:
            aimed = True
            if name in values:
                params[name] = values[name]
            elif name == "secret_name":
                params[name] = self.new_secret()
            elif name == "api_key_prefix":
                params[name] = self.new_key_prefix()
        if inference and "chain_id" not in params:
            # Baseten's own form: the chain's id in the Host header; a bare path (`/run_remote`)
            # is the regional form, with the environment there too.
            regional = case.operation.path.count("/") == 1
            env = f"-{_pick(chain.environments, share)}" if regional else ""
            headers["Host"] = f"chain-{chain.id}{env}.fuzz.example"
            aimed = True
        if isinstance(case.body, dict):
            aimed = self._aim_body(case, case.body, chain, share) or aimed
        if aimed:
            self.aimed[label] += 1
        return headers

    def _aim_body(
        self, case: schemathesis.Case, body: dict[str, Any], chain: Chain, share: int
    ) -> bool:
        """Names real things in the body fields that name things; True if any did."""
        path = case.operation.path
        if path == "/v1/chains/deploy":
            # Generated manifests almost never pass the name and graph checks.
            if share < 50:
                manifest = hello_manifest(self._name("chain"), "production")
            elif share < 65:
                manifest = hello_manifest(environment=None)
                del manifest["chain_name"]
                manifest["chain_id"] = self.playground.id if self.playground else ""
            else:
                return False
            body.clear()
            if case.media_type == "application/json":
                body.update(manifest)
            else:
                body["manifest"] = json.dumps(manifest)
            return True
        named = path in ("/v1/secrets", "/v1/chains/{chain_id}/environments")
        if named and share < 65 and isinstance(body.get("name"), str):
            # Generated names almost never pass the services' name rules.
            body["name"] = self._name("name")
            return True
        aimed = False
        if isinstance(body.get("deployment_id"), str):
            body["deployment_id"] = _pick(chain.deployment_ids, share)
            aimed = True
        updates = body.get("updates")
        if isinstance(updates, list):
            for index, update in enumerate(updates):
                if not isinstance(update, dict):
                    continue
                if isinstance(update.get("chainlet_name"), str):
                    update["chainlet_name"] = _pick(chain.chainlet_names, share + index)
                    aimed = True
                if isinstance(update.get("instance_type_id"), str):
                    update["instance_type_id"] = _pick(self.instance_types, share // 3 + index)
        return aimed
