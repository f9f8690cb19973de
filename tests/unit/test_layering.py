"""Imports point one way: api/cli → services → domain/store; domain imports nothing of ours."""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "chainyard"

# Which of our top-level packages (or top-level modules) each package may import. The composition
# root, `chainyard/server.py`, wires everything; top-level modules have no rule here.
ALLOWED: dict[str, set[str]] = {
    "domain": {"domain"},
    "schemas": {"schemas", "domain"},
    "store": {"store", "domain"},
    # `interpreters` (a top-level module): which Python runs a chainlet, asked at deploy (for
    # the push's warnings) and at build. `archives`: a live patch unpacks stored source
    # archives, and checks the one it packs, as the deploy route checks an upload.
    "services": {"services", "domain", "schemas", "store", "interpreters", "archives"},
    # `replica_auth` (a top-level module, imported by replicas too): the credential a replica
    # wants from the runtime's probes and the gateway.
    # `server_lock`: the local runtime reaps leftover replicas only under the data dir's lock.
    "runtime": {
        "runtime",
        "domain",
        "config",
        "archives",
        "interpreters",
        "replica_auth",
        "server_lock",
    },
    "reconciler": {"reconciler", "services", "runtime", "domain"},
    # `http_client`: the data plane's keep-alive client (a top-level module: replicas use it too).
    # `webhooks`: async_run_remote checks the webhook target; `schemas`: the async routes document
    # their answers (the services build them).
    "gateway": {
        "gateway",
        "services",
        "runtime",
        "domain",
        "schemas",
        "webhooks",
        "abortable",
        "replica_auth",
        "http_client",
    },
    "autoscaler": {"autoscaler", "services", "domain"},
    "cluster": {"cluster", "services", "runtime", "domain"},
    "api": {"api", "services", "schemas", "domain", "archives"},
    # User chains run in replicas with truss_chains; they must not drag the server in.
    "chains": {"chains", "abortable", "replica_auth", "http_client"},
    # `serve` locks the data dir and builds the server (`chainyard.server`), `admin` opens its
    # store the same way; only these two files (CLI_SERVER_SIDE) reach past the SDK.
    "cli": {
        "cli",
        "server",
        "server_lock",
        "workers",
        "config",
        "domain",
        "services",
        "sdk",
        "schemas",
        "chains",
    },
    # Webhooks' payload, signature, target checks and delivery: given the secrets and the
    # operator's policy by their caller, they read no store.
    "webhooks": {"webhooks", "domain"},
    # The client library talks HTTP and speaks the wire models; nothing of the server.
    "sdk": {"sdk", "schemas"},
    # The async runner calls chains through the gateway's internal route (its path, from
    # `gateway`) on the data plane's client, records in the store through the queue's services,
    # and sends webhooks; `metrics`: what it measures. The composition root builds it.
    "async_runner": {
        "async_runner",
        "services",
        "domain",
        "store",
        "gateway",
        "webhooks",
        "http_client",
        "metrics",
    },
    # The controller and worker processes split the composition root's parts over processes:
    # they take them from `server`, and reach only the few parts they hand over the channel.
    "workers": {
        "workers",
        "server",
        "config",
        "api",
        "gateway",
        "metrics",
        "runtime",
        "services",
        # A worker wakes the controller's async runner, once per burst of enqueues.
        "async_runner",
    },
}
# The CLI's API commands go through the SDK only; `serve` and `admin` (operator commands on the
# server and its store) are the CLI files that may reach into the server.
CLI_SERVER_SIDE = {SRC / "cli" / "main.py", SRC / "cli" / "admin.py"}
CLI_OVER_SDK = {"cli", "sdk", "schemas", "chains"}


def _our_imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "chainyard" and node.level == 0:
            # `from chainyard import server_lock` names the module in the alias.
            names = [f"chainyard.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "chainyard" and len(parts) > 1:
                found.add(parts[1])
    return found


def _files() -> list[tuple[str, pathlib.Path]]:
    return [
        (path.relative_to(SRC).parts[0], path)
        for path in sorted(SRC.rglob("*.py"))
        if len(path.relative_to(SRC).parts) > 1
    ]


@pytest.mark.parametrize(("package", "path"), _files(), ids=lambda v: str(v))
def test_imports_point_one_way(package: str, path: pathlib.Path) -> None:
    allowed = ALLOWED.get(package)
    if allowed is None:
        pytest.skip(f"no rule for package {package}")
    forbidden = _our_imports(path) - allowed - {"__version__"}
    assert not forbidden, f"{path.relative_to(SRC)} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((SRC / "cli").rglob("*.py")) if p not in CLI_SERVER_SIDE],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_cli_commands_use_the_sdk_only(path: pathlib.Path) -> None:
    forbidden = _our_imports(path) - CLI_OVER_SDK
    assert not forbidden, f"{path.relative_to(SRC)} imports {sorted(forbidden)}"


def test_the_check_sees_imports() -> None:
    assert "domain" in _our_imports(SRC / "services" / "lifecycle.py")
    assert "archives" in _our_imports(SRC / "api" / "routes" / "deploy.py")


def test_only_the_composition_root_builds_the_server() -> None:
    """The loops, the runtime and the gateway are wired in `chainyard/server.py`; the HTTP API
    takes what it serves from there and imports none of them."""
    assert "server" not in ALLOWED["api"]
    for part in ("runtime", "reconciler", "autoscaler", "cluster", "gateway", "config"):
        assert part not in ALLOWED["api"]
    assert {"api", "gateway", "reconciler", "autoscaler", "cluster", "runtime"} <= _our_imports(
        SRC / "server.py"
    )
