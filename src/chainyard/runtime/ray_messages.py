"""What the Ray runtime says of its replicas: their address, and short reasons out of Ray's long
actor and runtime-env errors (which also list ids and addresses)."""

from __future__ import annotations


def address(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def actor_error(exc: BaseException) -> str:
    """A short reason from a Ray actor error (its message also lists ids and addresses)."""
    text = str(exc)
    if "node has died" in text or "preempted" in text:
        detail = next((ln.strip() for ln in text.splitlines() if "node" in ln.lower()), "")
        return f"the Ray node running the replica died ({detail})"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "the replica's Ray actor failed: " + " ".join(lines)[:600]


def env_error(text: str) -> str:
    """pip's complaint out of a runtime-env failure (Ray wraps it in its own traceback)."""
    errors = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ERROR:")]
    if errors:
        return " ".join(errors)[:800]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[-3:])[:800]
