"""The self-check of tests/e2e/test_hostile_tenant.py: run unsandboxed, in this process, against a
real server whose every door is open, the hostile probe finds each leak, and the verdicts the
acceptance test wants empty are not. So the acceptance test can fail.

The server runs on the simulated runtime (no replica processes: fast); a bare HTTP server on
127.0.0.1 stands in for a replica port that answers anyone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chainyard.services.crypto import SecretCipher
from tests.e2e.chains.hostile import hostile_probe
from tests.e2e.conftest import CHAINYARD, KEY, LiveServer, _free_port, wait_for
from tests.support import hostile
from tests.support.server import hello_manifest

SERVER_MARKER = secrets.token_hex(16)
OWN_MARKER = secrets.token_hex(16)
SECRET_MARKER = secrets.token_hex(16)
SOURCE_MARKER = secrets.token_hex(16)
STAND_IN_MARKER = secrets.token_hex(16)


class _OpenReplica(http.server.BaseHTTPRequestHandler):
    """Answers every POST with 200: a replica port that asks for no credential."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"stand_in": STAND_IN_MARKER}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def open_replica() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OpenReplica)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("hostile-selfcheck")
    live = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        runtime="simulated",
        env={"CY_SERVER_MARKER": SERVER_MARKER},
    )
    live.start()
    yield live
    live.stop()


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHAINYARD_")}


def test_the_probe_finds_every_leak_of_an_unprotected_server(
    server: LiveServer,
    open_replica: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b_key = hostile.admin_key(CHAINYARD, str(server.data_dir), "tenant-b", _cli_env())
    with server.client(b_key) as b:
        assert b.post("/v1/secrets", json={"name": "cy_b", "value": SECRET_MARKER}).is_success
        deployed = b.post("/v1/chains/deploy", json=hello_manifest("b-chain")).json()
        keys_before = {k["prefix"] for k in b.get("/v1/api_keys").json()["keys"]}
    chain_id, deployment_id = deployed["chain_id"], deployed["chain_deployment"]["id"]
    with server.client(b_key) as b:

        def active() -> dict[str, Any] | None:
            d: dict[str, Any] = b.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}").json()
            return d if d["status"] == "ACTIVE" else None

        deployment = wait_for(active, timeout=60, what="B's deployment active")
    chainlet_id = next(c["id"] for c in deployment["chainlets"] if c["name"] == "HelloWorld")

    # Where a replica runs: inside `<data dir>/sources/<digest>/`, beside other chains' sources.
    own_source = server.data_dir / "sources" / "a0digest"
    own_source.mkdir(parents=True)
    other = server.data_dir / "sources" / "b0digest"
    other.mkdir()
    (other / "chain.py").write_text(f"TOKEN = {SOURCE_MARKER!r}\n")
    monkeypatch.chdir(own_source)
    monkeypatch.setenv("CY_OWN_MARKER", OWN_MARKER)

    findings = hostile_probe.probe(
        gateway=server.url,
        b_workspace="tenant-b",
        b_chain_id=chain_id,
        b_deployment_id=deployment_id,
        b_chainlet_id=chainlet_id,
        b_request={"max_value": 1},
        # Named, as the acceptance test names B's replica ports: a busy machine listens on more
        # ports than the probe's scan calls. That the scan sees it is asserted below.
        extra_ports=[open_replica],
    )
    findings = json.loads(json.dumps(findings))  # as it would come back from a replica
    assert [d["path"] for d in findings["data_dirs"]] == [str(server.data_dir.resolve())]

    secret_key = (server.data_dir / "secret.key").read_text().strip()
    db = sqlite3.connect(server.data_dir / "chainyard.db")
    key_hash, prefix = db.execute(
        "SELECT key_hash, prefix FROM api_keys WHERE prefix = ?", (b_key.partition(".")[0],)
    ).fetchone()
    (ciphertext,) = db.execute("SELECT ciphertext FROM secrets WHERE name = 'cy_b'").fetchone()
    db.close()
    markers = {
        "own environment": OWN_MARKER,
        "server environment": SERVER_MARKER,
        "bootstrap key": KEY,
        "secret.key": secret_key,
        "B's key hash": key_hash,
        "B's key prefix": prefix,
        "B's secret ciphertext": ciphertext.decode(),
        "B's secret, decrypted": SECRET_MARKER,
        "another chain's source": SOURCE_MARKER,
        "an open replica's answer": STAND_IN_MARKER,
    }
    assert set(hostile.leaked(findings, markers)) == set(markers)
    assert "$.decrypted[0]" in " ".join(hostile.where_found(findings, SECRET_MARKER))
    assert "$.environment" in " ".join(hostile.where_found(findings, OWN_MARKER))

    # The server's process: seen and signalable.
    seen = hostile.visible_processes(findings, hostile.is_server(server.port))
    assert seen and seen[0]["signalable"], seen

    # The database write landed, and the key it wrote opens workspace B through the API.
    writes = hostile.landed_writes(findings)
    assert len(writes) == 1
    assert writes[0]["use"]["api_keys"]["status"] == 200
    assert "cy_b" in writes[0]["use"]["secrets"]["body"]
    with server.client(b_key) as b:
        keys_after = {k["prefix"] for k in b.get("/v1/api_keys").json()["keys"]}
    assert keys_after - keys_before == {hostile.written_keys(findings)[0].partition(".")[0]}
    with server.client(hostile.written_keys(findings)[0]) as written:
        assert written.get("/v1/chains").status_code == 200

    # The open port answered; the scan of /proc/net/tcp sees it too.
    assert open_replica in hostile_probe.listening_ports()
    answered = hostile.answered_direct_calls(findings, {open_replica})
    assert answered and answered[0]["status"] == 200

    # The gateway's internal route refuses every token the probe can make now (no derivation).
    assert hostile.accepted_internal_calls(findings) == [], findings["forged_internal_calls"]
    # Where the first scheme still held (a gateway that accepts HMAC(secret.key, deployment)),
    # the probe's forged token gets in, and no token does not.
    with _first_scheme_gateway(secret_key, deployment_id) as old_gateway:
        calls = hostile_probe.forge_internal_calls(
            old_gateway, chainlet_id, deployment_id, {"max_value": 1}, [secret_key], None
        )
    accepted = hostile.accepted_internal_calls({"forged_internal_calls": calls})
    assert [call["how"] for call in accepted] == ["forged from server key #0"], calls


@contextlib.contextmanager
def _first_scheme_gateway(secret_key: str, deployment_id: str) -> Iterator[str]:
    """The internal route as first built: a bearer token derived from the server's key opens
    the deployment's chainlets (SecretCipher.derive, as it was)."""
    cipher = SecretCipher(secret_key.encode())
    expected = hmac.new(
        cipher.derive("internal-token"), deployment_id.encode(), hashlib.sha256
    ).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            token = self.headers.get("Authorization", "").partition(" ")[2]
            ok = hmac.compare_digest(token, expected)
            body = json.dumps({"ok": ok}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
