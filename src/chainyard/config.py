"""Server settings, from flags and environment variables."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
from collections.abc import Iterable

from chainyard.domain.body_limits import DEFAULT_MAX_BODY_BYTES
from chainyard.store.db import is_sqlite_url, sqlite_url


def parse_pythons(items: list[str] | str | None) -> dict[str, str]:
    """`3.10=/path` items (a list, or one comma-separated string) as {version: path}."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [i for i in items.split(",") if i.strip()]
    configured: dict[str, str] = {}
    for item in items:
        version, sep, path = item.partition("=")
        version = version.strip()
        if not sep or not path.strip() or not version.replace(".", "").isdigit():
            raise ValueError(f"--python {item!r}: give VERSION=PATH, e.g. 3.10=/usr/bin/python3.10")
        configured[version] = path.strip()
    return configured


@dataclasses.dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: pathlib.Path = pathlib.Path(".chainyard")
    database_url: str | None = None
    runtime: str = "local"
    instance_types_file: pathlib.Path | None = None
    bootstrap_api_key: str | None = None
    # Seconds between reconciler ticks; a change also wakes the reconciler at once.
    reconcile_interval: float = 1.0
    # Simulated runtime: seconds a build takes and seconds until a replica is ready.
    sim_build_delay: float = 0.2
    sim_ready_delay: float = 0.2
    # Simulated runtime: chainlets whose names match these regexes fail their build / deploy.
    sim_fail_build: str | None = None
    sim_fail_deploy: str | None = None
    run_reconciler: bool = True
    # Seconds between autoscaler decisions (it also samples in-flight requests at this rate).
    autoscale_interval: float = 0.5
    run_autoscaler: bool = True
    # Ray runtime: the cluster to use (None starts a Ray on this machine), how long a replica that
    # no node can take waits before it fails, where chainlets' data dirs live on each node
    # (None: the node's temp dir), and how long the server waits for Ray to answer at start.
    # See docs/ray.md.
    ray_address: str | None = None
    ray_unschedulable_timeout: float = 120.0
    ray_data_dir: str | None = None
    ray_connect_timeout: float = 60.0
    # Where replicas reach this server, when that is not host:port (replicas on other machines).
    advertise_url: str | None = None
    # Several servers on one database: this server's name in the control-loops lease (default
    # host:port, stable across restarts) and the lease's time to live, in seconds.
    server_id: str | None = None
    lease_ttl: float = 5.0
    # Requests per second per API key and endpoint (0 turns the limit off).
    rate_limit_per_second: float = 100.0
    # Failed authentications per client address (services/auth_throttle.py): a burst of this
    # many, then `auth_failures_per_second`; 0 turns the limit off.
    auth_failure_limit: int = 20
    auth_failures_per_second: float = 2.0
    # Interpreters by Python version for chainlets whose base image asks for one
    # (interpreters.py), and whether the build may apt-get install a chainlet's missing
    # apt_requirements on this host (local runtime only).
    pythons: dict[str, str] = dataclasses.field(default_factory=dict)
    install_apt_packages: bool = False
    # Variables of the server's environment that replicas get too (runtime/replica_env.py):
    # a replica's environment is otherwise built from scratch, never the server's.
    pass_env: tuple[str, ...] = ()
    # Replicas of the local runtime run in a bubblewrap sandbox per deployment: "auto" (when it
    # works here), "required" (refuse to start otherwise), "off". Without one, a server serves
    # one workspace unless `allow_unsandboxed` (protections.py, docs/security.md).
    sandbox: str = "auto"
    allow_unsandboxed: bool = False
    # Largest request body of the management API, except the deploy upload (which may carry a
    # source archive).
    max_request_bytes: int = 16 * 2**20
    # Largest inference request body (run_remote, and replicas calling their dependencies):
    # audio and images travel inline, as JSON (base64) or msgpack. See docs/local-runtime.md.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Worker processes serving the API and gateway (0: one process does everything; None: one
    # per core).
    workers: int | None = None
    # Whether replicas call their dependencies' replicas directly, learning them from the
    # gateway (gateway/direct.py), rather than through the gateway's internal route.
    direct_dependency_calls: bool = True
    # Whether async requests' webhooks may go to loopback, private, link-local and this
    # machine's own addresses, and over plain http (webhooks/targets.py): off, a webhook URL
    # could reach what listens inside the server's network.
    allow_private_webhooks: bool = False
    # The async runner (async_runner/): whether this server runs one (off: it only serves the
    # API, and queued requests wait for a server that does), how many async requests it runs at
    # once, how many of one deployment's run at once over all servers (so that a backlog leaves
    # sync callers their share), and how long a claimed request stays with a server that stopped
    # renewing it (a killed server's requests are taken over after this long).
    run_async_runner: bool = True
    async_concurrency: int = 256
    async_concurrency_per_deployment: int = 16
    async_lease_seconds: float = 30.0
    # Webhook deliveries: attempts in all, and the wait after the first failed one (doubling,
    # at most 30 s).
    webhook_max_attempts: int = 4
    webhook_retry_seconds: float = 2.0

    @property
    def gateway_url(self) -> str:
        """Where replicas reach this server (for calls to their dependencies)."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "localhost") else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def local_gateway_url(self) -> str:
        """Where this server's own processes reach its gateway (the async runner): host:port,
        never the advertised URL, which may be a proxy's."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "localhost") else self.host
        if host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def effective_workers(self) -> int:
        if self.workers is None:
            return max(1, os.cpu_count() or 1)
        if self.workers < 0:
            raise ValueError("--workers must be 0 (one process) or more")
        return self.workers

    @property
    def effective_server_id(self) -> str:
        return self.server_id or f"{socket.gethostname()}:{self.port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def shares_database(self) -> bool:
        """Whether other servers may use this server's database (PostgreSQL), not a SQLite file
        of its own data dir."""
        return not is_sqlite_url(self.effective_database_url)

    @classmethod
    def from_env(cls, **overrides: object) -> ServerConfig:
        """Defaults, then CHAINYARD_* environment variables, then explicit overrides (flags)."""
        cfg = cls()
        env = os.environ
        if "CHAINYARD_DATABASE_URL" in env:
            cfg.database_url = env["CHAINYARD_DATABASE_URL"]
        if "CHAINYARD_DATA_DIR" in env:
            cfg.data_dir = pathlib.Path(env["CHAINYARD_DATA_DIR"])
        if "CHAINYARD_BOOTSTRAP_API_KEY" in env:
            cfg.bootstrap_api_key = env["CHAINYARD_BOOTSTRAP_API_KEY"]
        if "CHAINYARD_RUNTIME" in env:
            cfg.runtime = env["CHAINYARD_RUNTIME"]
        if "CHAINYARD_RAY_ADDRESS" in env:
            cfg.ray_address = env["CHAINYARD_RAY_ADDRESS"]
        if "CHAINYARD_RAY_UNSCHEDULABLE_TIMEOUT" in env:
            cfg.ray_unschedulable_timeout = float(env["CHAINYARD_RAY_UNSCHEDULABLE_TIMEOUT"])
        if "CHAINYARD_RAY_DATA_DIR" in env:
            cfg.ray_data_dir = env["CHAINYARD_RAY_DATA_DIR"]
        if "CHAINYARD_RAY_CONNECT_TIMEOUT" in env:
            cfg.ray_connect_timeout = float(env["CHAINYARD_RAY_CONNECT_TIMEOUT"])
        if "CHAINYARD_ADVERTISE_URL" in env:
            cfg.advertise_url = env["CHAINYARD_ADVERTISE_URL"]
        if "CHAINYARD_SERVER_ID" in env:
            cfg.server_id = env["CHAINYARD_SERVER_ID"]
        if "CHAINYARD_RATE_LIMIT" in env:
            cfg.rate_limit_per_second = float(env["CHAINYARD_RATE_LIMIT"])
        if "CHAINYARD_AUTH_FAILURE_LIMIT" in env:
            cfg.auth_failure_limit = int(env["CHAINYARD_AUTH_FAILURE_LIMIT"])
        if "CHAINYARD_AUTH_FAILURES_PER_SECOND" in env:
            cfg.auth_failures_per_second = float(env["CHAINYARD_AUTH_FAILURES_PER_SECOND"])
        if "CHAINYARD_MAX_BODY_BYTES" in env:
            cfg.max_body_bytes = parse_size(
                env["CHAINYARD_MAX_BODY_BYTES"], "CHAINYARD_MAX_BODY_BYTES"
            )
        if "CHAINYARD_PASS_ENV" in env:
            cfg.pass_env = parse_names(env["CHAINYARD_PASS_ENV"])
        if "CHAINYARD_SANDBOX" in env:
            cfg.sandbox = env["CHAINYARD_SANDBOX"]
        if "CHAINYARD_ALLOW_UNSANDBOXED" in env:
            cfg.allow_unsandboxed = _truthy(env["CHAINYARD_ALLOW_UNSANDBOXED"])
        if "CHAINYARD_PYTHONS" in env:
            cfg.pythons = parse_pythons(env["CHAINYARD_PYTHONS"])
        if "CHAINYARD_WORKERS" in env:
            cfg.workers = int(env["CHAINYARD_WORKERS"])
        if "CHAINYARD_DIRECT_DEPENDENCY_CALLS" in env:
            cfg.direct_dependency_calls = _truthy(env["CHAINYARD_DIRECT_DEPENDENCY_CALLS"])
        if "CHAINYARD_ALLOW_PRIVATE_WEBHOOKS" in env:
            cfg.allow_private_webhooks = _truthy(env["CHAINYARD_ALLOW_PRIVATE_WEBHOOKS"])
        if "CHAINYARD_ASYNC_RUNNER" in env:
            cfg.run_async_runner = _truthy(env["CHAINYARD_ASYNC_RUNNER"])
        if "CHAINYARD_ASYNC_CONCURRENCY" in env:
            cfg.async_concurrency = int(env["CHAINYARD_ASYNC_CONCURRENCY"])
        if "CHAINYARD_ASYNC_CONCURRENCY_PER_DEPLOYMENT" in env:
            cfg.async_concurrency_per_deployment = int(
                env["CHAINYARD_ASYNC_CONCURRENCY_PER_DEPLOYMENT"]
            )
        if "CHAINYARD_ASYNC_LEASE_SECONDS" in env:
            cfg.async_lease_seconds = float(env["CHAINYARD_ASYNC_LEASE_SECONDS"])
        if "CHAINYARD_WEBHOOK_MAX_ATTEMPTS" in env:
            cfg.webhook_max_attempts = int(env["CHAINYARD_WEBHOOK_MAX_ATTEMPTS"])
        if "CHAINYARD_WEBHOOK_RETRY_SECONDS" in env:
            cfg.webhook_retry_seconds = float(env["CHAINYARD_WEBHOOK_RETRY_SECONDS"])
        if "CHAINYARD_INSTALL_APT_PACKAGES" in env:
            cfg.install_apt_packages = _truthy(env["CHAINYARD_INSTALL_APT_PACKAGES"])
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        cfg.data_dir = pathlib.Path(cfg.data_dir)
        return cfg


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


_UNITS = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20}
_UNITS |= {"g": 2**30, "gib": 2**30}


def parse_size(text: str, what: str = "size") -> int:
    """A byte count: `268435456`, `256MiB`, `256M`, `1GiB`, `512KiB` (binary units)."""
    raw = text.strip().lower().replace(" ", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :]
    if not digits.isdigit() or unit not in _UNITS:
        raise ValueError(
            f"{what}: {text!r} is not a size: give bytes, or a number with KiB, MiB or GiB "
            "(e.g. 256MiB)"
        )
    size = int(digits) * _UNITS[unit]
    if size < 1:
        raise ValueError(f"{what}: {text!r}: the size must be at least 1 byte")
    return size


def parse_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """`A,B` or ["A", "B"] → ("A", "B"); each must be a valid variable name."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(n.strip() for n in items if n.strip())
    bad = [n for n in names if not n.replace("_", "a").isalnum() or n[0].isdigit()]
    if bad:
        raise ValueError(f"not environment variable names: {', '.join(bad)}")
    return names
