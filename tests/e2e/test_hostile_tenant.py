"""The acceptance test of issue 16: a chainlet of workspace A reaches nothing of the platform's
and nothing of workspace B's.

Workspace B holds a secret and runs a chain that answers it; the server runs with a marker in its
environment. Workspace A pushes tests/e2e/chains/hostile/, whose chainlet tries every way out the
first probe found (environment, /proc, the data dir's files, the database read and written,
signals, forged replica-to-gateway tokens, replicas called directly) and answers what it got. The
test judges outcomes, not mechanisms: no marker, key, secret or file content came back, no write
landed, no forged or borrowed credential was accepted, no replica answered a caller that is not
the gateway, and neither the server nor B's processes were visible. The probe's power to find each
of these where it exists is shown by tests/e2e/test_hostile_probe_detects.py.

Local runtime only: on Ray, a cluster is one trust domain (docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import CHAINYARD, KEY, REPO, LiveServer, _free_port
from tests.support import hostile

HOSTILE = REPO / "tests" / "e2e" / "chains" / "hostile" / "hostile_chain.py"
B_CHAIN_FILE = "tenant_b_secrets.py"
B_SECRET = "cy_b_secret"

SERVER_MARKER = secrets.token_hex(16)
B_SECRET_MARKER = secrets.token_hex(16)
B_SOURCE_MARKER = secrets.token_hex(16)
B_ENV_MARKER = secrets.token_hex(16)

# Workspace B's chain: answers its secret to whoever may call it; its source and its replicas'
# environment carry markers of their own.
B_CHAIN = f'''
import truss_chains as chains

SOURCE_MARKER = "{B_SOURCE_MARKER}"


@chains.mark_entrypoint("tenant-b-secrets")
class TenantBSecrets(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        assets=chains.Assets(secret_keys=["{B_SECRET}"]),
        options=chains.ChainletOptions(env_variables={{"CY_B_ENV": "{B_ENV_MARKER}"}}),
    )

    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._secrets = context.secrets

    def run_remote(self, name: str) -> str:
        return self._secrets[name]
'''

pytestmark = pytest.mark.slow


def _cli_env(key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINYARD_")}
    if key is not None:
        env["CHAINYARD_API_KEY"] = key
    return env


def _push(server: LiveServer, chain_file: pathlib.Path, key: str) -> dict[str, str]:
    result = subprocess.run(
        [*CHAINYARD, "push", str(chain_file), "--promote", "--wait"],
        capture_output=True,
        text=True,
        env={**_cli_env(key), "CHAINYARD_URL": server.url},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("hostile")
    live = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        env={"CY_SERVER_MARKER": SERVER_MARKER},
    )
    live.start()
    yield live
    live.stop()


def test_a_hostile_chainlet_reaches_nothing_of_the_platform_or_of_another_workspace(
    server: LiveServer, tmp_path: pathlib.Path
) -> None:
    a_key = hostile.admin_key(CHAINYARD, str(server.data_dir), "tenant-a", _cli_env())
    b_key = hostile.admin_key(CHAINYARD, str(server.data_dir), "tenant-b", _cli_env())

    # Workspace B: a secret, and a running chain that answers it.
    with server.client(b_key) as b:
        stored = b.post("/v1/secrets", json={"name": B_SECRET, "value": B_SECRET_MARKER})
        assert stored.status_code == 200, stored.text
    b_dir = tmp_path / "tenant_b"
    b_dir.mkdir()
    (b_dir / B_CHAIN_FILE).write_text(B_CHAIN)
    b_out = _push(server, b_dir / B_CHAIN_FILE, b_key)
    b_chain, b_deployment = b_out["chain_id"], b_out["chain_deployment_id"]
    with server.client(b_key) as b:
        deployment = b.get(f"/v1/chains/{b_chain}/deployments/{b_deployment}").json()
        answered = b.post(f"/chains/{b_chain}/production/run_remote", json={"name": B_SECRET})
        assert answered.json() == B_SECRET_MARKER  # what any way into B would bring back
        b_keys_before = {k["prefix"] for k in b.get("/v1/api_keys").json()["keys"]}

    # Workspace A: the hostile chain, called with everything an attacker could know or guess.
    a_out = _push(server, HOSTILE, a_key)
    assert server.process is not None
    replica_ports = hostile.listening_ports_under(server.process.pid) - {server.port}
    assert replica_ports, "no replica port seen from outside"
    with server.client(a_key) as a:
        a.timeout = 300
        response = a.post(
            f"/chains/{a_out['chain_id']}/production/run_remote",
            json={
                "arguments": json.dumps(
                    {
                        "gateway": server.url,
                        "b_workspace": "tenant-b",
                        "b_chain_id": b_chain,
                        "b_deployment_id": b_deployment,
                        "b_chainlet_id": deployment["chainlets"][0]["id"],
                        "b_request": {"name": B_SECRET},
                        "data_dir": str(server.data_dir.resolve()),
                        "api_key": a_key,
                        "extra_ports": sorted(replica_ports),
                    }
                )
            },
        )
    assert response.status_code == 200, response.text[-3000:]
    findings: dict[str, Any] = json.loads(response.json())
    assert {"environment", "processes", "data_dirs", "direct_replica_calls"} <= set(findings)

    problems = _leaks(server, findings, b_key) + _landed(server, findings, b_key, b_keys_before)
    problems += [
        f"internal route accepted a call to B's chainlet: {c}"
        for c in hostile.accepted_internal_calls(findings)
    ]
    problems += [
        f"a replica answered a direct call: {c}"
        for c in hostile.answered_direct_calls(findings, replica_ports)
    ]
    # Not vacuous: every replica port was called, with and without A's own token, and answered.
    refused = {
        call["port"]
        for call in findings["direct_replica_calls"]
        if call["port"] in replica_ports and call.get("status") is not None
    }
    problems += [f"replica port {p} was never called" for p in sorted(replica_ports - refused)]
    seen = hostile.visible_processes(findings, hostile.is_server(server.port))
    seen += hostile.visible_processes(findings, hostile.mentions(B_CHAIN_FILE))
    problems += [f"visible process: {p}" for p in seen]
    assert not problems, "\n".join(problems)


def _leaks(server: LiveServer, findings: dict[str, Any], b_key: str) -> list[str]:
    """Every marker of the platform's or of B's that came back, and where."""
    db = sqlite3.connect(f"file:{server.data_dir / 'chainyard.db'}?mode=ro", uri=True)
    try:
        b_hash, b_prefix = db.execute(
            "SELECT key_hash, prefix FROM api_keys WHERE prefix = ?", (b_key.partition(".")[0],)
        ).fetchone()
        (ciphertext,) = db.execute(
            "SELECT ciphertext FROM secrets WHERE name = ?", (B_SECRET,)
        ).fetchone()
    finally:
        db.close()
    markers = {
        "the server's environment": SERVER_MARKER,
        "the bootstrap key": KEY,
        "the bootstrap key's hash": hashlib.sha256(KEY.encode()).hexdigest(),
        "secret.key": (server.data_dir / "secret.key").read_text().strip(),
        "B's secret": B_SECRET_MARKER,
        "B's secret, encrypted": bytes(ciphertext).decode(),
        "B's source": B_SOURCE_MARKER,
        "B's replicas' environment": B_ENV_MARKER,
        "B's API key": b_key,
        "B's API key's hash": b_hash,
        "B's API key's prefix": b_prefix,
    }
    found = hostile.leaked(findings, markers)
    return [f"{name} leaked at {where}" for name, where in found.items()]


def _landed(
    server: LiveServer, findings: dict[str, Any], b_key: str, b_keys_before: set[str]
) -> list[str]:
    """Writes to the database: reported by the probe, or seen in B's keys, or a key that works."""
    problems = [f"database write landed: {w}" for w in hostile.landed_writes(findings)]
    with server.client(b_key) as b:
        after = {k["prefix"] for k in b.get("/v1/api_keys").json()["keys"]}
    if after != b_keys_before:
        problems.append(f"B's API keys changed: {sorted(after ^ b_keys_before)}")
    for raw in hostile.written_keys(findings):
        with server.client(raw) as written:
            status = written.get("/v1/chains").status_code
        if status != 401:
            problems.append(f"the key the probe wrote is answered {status}")
    return problems
