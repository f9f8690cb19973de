"""Imports point one way: api/cli → services → domain/store; domain imports nothing of ours."""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "chainyard"

# Which of our top-level packages each package may import. `api/app.py` is the composition root
# and may wire everything; it is listed separately.
ALLOWED: dict[str, set[str]] = {
    "domain": {"domain"},
    "schemas": {"schemas", "domain"},
    "store": {"store", "domain"},
    # `interpreters` (a top-level module): which Python runs a chainlet, asked at deploy (for
    # the push's warnings) and at build.
    "services": {"services", "domain", "schemas", "store", "interpreters"},
    # `replica_auth` (a top-level module, imported by replicas too): the credential a replica
    # wants from the runtime's probes and the gateway.
    "runtime": {"runtime", "domain", "config", "archives", "interpreters", "replica_auth"},
    # api/app.py (the composition root) also wires chainyard.metrics.
    "reconciler": {"reconciler", "services", "runtime", "domain"},
    "gateway": {"gateway", "services", "runtime", "domain", "abortable", "replica_auth"},
    "autoscaler": {"autoscaler", "services", "domain"},
    "cluster": {"cluster", "services", "runtime", "domain"},
    "api": {"api", "services", "schemas", "domain", "archives"},
    # User chains run in replicas with truss_chains; they must not drag the server in.
    "chains": {"chains", "abortable", "replica_auth"},
    "cli": {"cli", "api", "config", "domain", "services", "sdk", "schemas", "chains"},
    # The client library talks HTTP and speaks the wire models; nothing of the server.
    "sdk": {"sdk", "schemas"},
}
# The CLI's API commands go through the SDK only; `serve` and `admin` (operator commands on the
# server and its store) are the CLI files that may reach into the server.
CLI_SERVER_SIDE = {SRC / "cli" / "main.py", SRC / "cli" / "admin.py"}
CLI_OVER_SDK = {"cli", "sdk", "schemas", "chains"}
COMPOSITION_ROOTS = {SRC / "api" / "app.py"}


def _our_imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
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
        if len(path.relative_to(SRC).parts) > 1 and path not in COMPOSITION_ROOTS
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
