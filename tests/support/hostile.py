"""Judging what the hostile probe (tests/e2e/chains/hostile/hostile_probe.py) brought back.

Shared by the acceptance test of issue 16 (tests/e2e/test_hostile_tenant.py), which wants every
verdict empty, and by its self-check (tests/e2e/test_hostile_probe_detects.py), which shows each
verdict is non-empty where the leak exists: so the acceptance test can fail.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import psutil

# What a gateway or replica answers when it refuses a caller: anything else got past its auth.
REFUSALS = frozenset({401, 403, 404})


def _walk(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path}.{key}", str(key)
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif value is not None:
        yield path, str(value)


def where_found(findings: Any, needle: str) -> list[str]:
    """The places (JSON paths) in the findings where `needle` occurs."""
    return [path for path, text in _walk(findings) if needle and needle in text]


def leaked(findings: Any, markers: Mapping[str, str]) -> dict[str, list[str]]:
    """For each marker found anywhere in the findings, where (the first few places)."""
    out = {}
    for name, value in markers.items():
        places = where_found(findings, value)
        if places:
            out[name] = places[:5]
    return out


def visible_processes(
    findings: Mapping[str, Any], is_foreign: Callable[[list[str]], bool]
) -> list[dict[str, Any]]:
    """Processes the probe saw whose command line says they are not its own."""
    return [
        {k: v for k, v in p.items() if k != "environ"}
        for p in findings.get("processes", [])
        if is_foreign([str(part) for part in p.get("cmdline") or []])
    ]


def is_server(port: int) -> Callable[[list[str]], bool]:
    """The `chainyard serve` process listening on `port`, or one of its worker processes."""

    def check(argv: list[str]) -> bool:
        if "chainyard.workers.worker" in argv:
            return True
        return "serve" in argv and any(
            a == "--port" and b == str(port) for a, b in itertools.pairwise(argv)
        )

    return check


def mentions(text: str) -> Callable[[list[str]], bool]:
    return lambda argv: any(text in part for part in argv)


def landed_writes(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [w for w in findings.get("database_writes", []) if w.get("inserted")]


def written_keys(findings: Mapping[str, Any]) -> list[str]:
    return [w["raw_key"] for w in findings.get("database_writes", []) if w.get("raw_key")]


def accepted_internal_calls(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Calls to another deployment's chainlet on the gateway's internal route that got past its
    auth (forged tokens, the caller's own token, none)."""
    return [
        {k: call.get(k) for k in ("how", "status", "body", "error")}
        for call in findings.get("forged_internal_calls", [])
        if call.get("status") is not None and call["status"] not in REFUSALS
    ]


def answered_direct_calls(
    findings: Mapping[str, Any], ports: Collection[int]
) -> list[dict[str, Any]]:
    """Direct calls to `ports` (bypassing the gateway) that a replica served."""
    return [
        {k: call.get(k) for k in ("port", "with_own_token", "status", "body")}
        for call in findings.get("direct_replica_calls", [])
        if call["port"] in ports and call.get("status") is not None and 200 <= call["status"] < 300
    ]


def listening_ports_under(pid: int) -> set[int]:
    """TCP ports that the descendants of `pid` listen on (seen from outside any sandbox)."""
    ports: set[int] = set()
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return ports
    for child in children:
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
    return ports


def admin_key(chainyard: list[str], data_dir: str, workspace: str, env: dict[str, str]) -> str:
    """A full-access key of `workspace` (created if new), from the operator's CLI."""
    created = subprocess.run(
        [*chainyard, "admin", "create-key", "--workspace", workspace, "--data-dir", data_dir],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]
