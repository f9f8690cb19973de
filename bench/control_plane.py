"""Control-plane benchmark: API latencies of a chainyard server holding many chains.

For each database (SQLite, PostgreSQL) the benchmark

1. builds a fresh database with the real migrations and fills it directly with SQLAlchemy bulk
   inserts: N chains in workspace `default` (plus a few in a second workspace), each with a
   `production` environment whose current deployment is its newest, ACTIVE, deployment; older
   deployments are SCALED_TO_ZERO or INACTIVE, as promotions and deactivations leave them;
2. starts the real server (`chainyard.server.create_app`, simulated runtime) under uvicorn in a
   child process, without its background loops (`run_reconciler=False`, `run_autoscaler=False`);
3. phase `loops_paused`: times, from this process over HTTP with one keep-alive connection,
   the read endpoints and the instance-type update (each call on a chain of its own, so each one
   creates a deployment) -- what the API costs by itself;
4. starts the loops, as the server's start would have; the reconciler then does what it does
   after a restart (the store says 2 x N chainlets run, the runtime runs none) and promotes
   phase 3's deployments; waits for it;
5. phase `loops_running`: the same requests again, as a server serves them;
6. waits until every promotion has finished, checks them, and writes
   `<out>/control_plane-<db>.json`.

Usage: python bench/control_plane.py [--db sqlite|postgres|both] [--chains 10000]
       [--deployments-per-chain 5] [--running-fraction 1.0] [--iterations 200]
       [--phases both|paused|running] [--out bench/results] [--quick]
See bench/README.md; results and their reading are in docs/bench.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import pathlib
import random
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import run_info
from sqlalchemy import func, insert, select, text

from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.services.environments import default_promotion_settings
from chainyard.store.audit_logs import AuditLog
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.db import Database
from chainyard.store.environments import ChainletEnvironmentSettings, Environment
from chainyard.store.workspaces import Workspace

ROOT = pathlib.Path(__file__).resolve().parents[1]
API_KEY = "bench0001.control-plane-benchmark-key-0123456789"
WORKSPACE = "default"
OTHER_WORKSPACE = "bench-other"
OTHER_CHAINS = 5
# The chainlets of every chain: Baseten's HelloWorld example, as `chainyard deploy` stores it.
CHAINLETS = (("HelloWorld", True, ["RandInt"]), ("RandInt", False, []))
COMPUTE = {"cpu_count": 1, "memory": "2Gi", "gpu": None, "gpu_count": 0, "predict_concurrency": 1}
BASE_TYPE = "1x2"  # what the catalogue picks for 1 CPU / 2Gi
UPDATE_TYPES = ("1x4", "2x8")
UPDATE_P50_GOAL_MS = 10.0
READ_P99_GOAL_MS = 50.0
_ID_ALPHABET = string.ascii_lowercase + string.digits


# --- population ---------------------------------------------------------------------------------


@dataclasses.dataclass
class ChainRef:
    id: str
    deployment_ids: list[str]  # oldest first; the last one is production's current deployment


@dataclasses.dataclass
class Population:
    chains: list[ChainRef]  # workspace `default`, oldest first
    other_chain_ids: list[str]  # the second workspace's chains (must answer 404)
    rows: dict[str, int]
    seconds: float


class _Ids:
    """Reproducible ids in chainyard's format (8 lowercase letters and digits), never repeated."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def __call__(self, length: int = 8) -> str:
        while True:
            value = "".join(self.rng.choices(_ID_ALPHABET, k=length))
            if value not in self.seen:
                self.seen.add(value)
                return value


class _Rows:
    """Rows of every table, in the order the foreign keys need."""

    def __init__(self) -> None:
        self.chains: list[dict[str, Any]] = []
        self.deployments: list[dict[str, Any]] = []
        self.chainlets: list[dict[str, Any]] = []
        self.environments: list[dict[str, Any]] = []
        self.settings: list[dict[str, Any]] = []
        self.audit: list[dict[str, Any]] = []


def _previous_status(age: int) -> tuple[str, str]:
    """(status, desired_state) of a deployment `age` promotions behind the current one: the one
    just replaced was scaled to zero by the promotion; older ones were deactivated or left so."""
    return ("SCALED_TO_ZERO", "ACTIVE") if age % 2 == 1 else ("INACTIVE", "INACTIVE")


def _add_chain(
    rows: _Rows,
    ids: _Ids,
    workspace_id: str,
    name: str,
    created: dt.datetime,
    n_deployments: int,
    running: bool = True,
) -> ChainRef:
    autoscaling = AutoscalingSettings().to_dict()
    chain_id = ids()
    env_id = ids()
    rows.chains.append(
        {"id": chain_id, "workspace_id": workspace_id, "name": name, "created_at": created}
    )
    api_actor = {
        "workspace_id": workspace_id,
        "chain_id": chain_id,
        "source": "API",
        "actor_type": "API_KEY",
        "actor_key_prefix": API_KEY.split(".")[0],
        "actor_key_name": "bootstrap",
    }
    system_actor = {
        **api_actor,
        "source": "SYSTEM",
        "actor_type": "BASETEN_SYSTEM",
        "actor_key_prefix": None,
        "actor_key_name": None,
    }
    promotion = default_promotion_settings()
    rows.audit.append(
        {
            **api_actor,
            "id": ids(12),
            "created_at": created,
            "event_type": "CHAIN_ENVIRONMENT_CREATED",
            "event_data": {
                "event_type": "CHAIN_ENVIRONMENT_CREATED",
                "chain_id": chain_id,
                "chain_name": name,
                "environment_name": "production",
                "redeploy_on_promotion": promotion["redeploy_on_promotion"],
                "ramp_up_while_promoting": promotion["ramp_up_while_promoting"],
                "ramp_up_duration_seconds": promotion["ramp_up_duration_seconds"],
            },
            "environment_name": "production",
            "chain_deployment_id": None,
        }
    )
    deployment_ids: list[str] = []
    for j in range(n_deployments):
        dep_id = ids()
        deployment_ids.append(dep_id)
        dep_created = created + dt.timedelta(hours=j + 1)
        dep_name = f"deployment-{j + 1}"
        current = j == n_deployments - 1
        if current:
            # A running chain serves one replica per chainlet; an idle one was scaled to zero.
            status = "ACTIVE" if running else "SCALED_TO_ZERO"
            desired_state = "ACTIVE"
        else:
            status, desired_state = _previous_status(n_deployments - 1 - j)
        replicas = 1 if current and running else 0
        rows.deployments.append(
            {
                "id": dep_id,
                "chain_id": chain_id,
                "name": dep_name,
                "created_at": dep_created,
                "status": status,
                "status_message": None,
                "desired_state": desired_state,
                "environment": "production" if current else None,
                "entrypoint": CHAINLETS[0][0],
                "artifact_digest": None,
                "source_deployment_id": None,
            }
        )
        for position, (chainlet, is_entrypoint, deps) in enumerate(CHAINLETS):
            rows.chainlets.append(
                {
                    "id": ids(),
                    "chain_deployment_id": dep_id,
                    "name": chainlet,
                    "position": position,
                    "is_entrypoint": is_entrypoint,
                    "dependencies": deps,
                    "compute": COMPUTE,
                    "pip_requirements": [],
                    "secret_keys": [],
                    "instance_type_id": BASE_TYPE,
                    "autoscaling": autoscaling,
                    "status": status,
                    "status_message": None,
                    "desired_replicas": replicas,
                    "ready_replicas": replicas,
                    "updated_at": dep_created + dt.timedelta(minutes=1),
                }
            )
        dep_event = {"chain_id": chain_id, "chain_name": name, "chain_deployment_id": dep_id}
        rows.audit.append(
            {
                **api_actor,
                "id": ids(12),
                "created_at": dep_created,
                "event_type": "CHAIN_DEPLOYED",
                "event_data": {
                    "event_type": "CHAIN_DEPLOYED",
                    **dep_event,
                    "chain_deployment_name": dep_name,
                    "is_primary": True,
                    "publish": True,
                },
                "environment_name": "production",
                "chain_deployment_id": dep_id,
            }
        )
        rows.audit.append(
            {
                **system_actor,
                "id": ids(12),
                "created_at": dep_created + dt.timedelta(minutes=1),
                "event_type": "CHAIN_DEPLOYMENT_PROMOTED",
                "event_data": {
                    "event_type": "CHAIN_DEPLOYMENT_PROMOTED",
                    **dep_event,
                    "chain_deployment_name": dep_name,
                    "environment_name": "production",
                    "environment_id": env_id,
                },
                "environment_name": "production",
                "chain_deployment_id": dep_id,
            }
        )
        if desired_state == "INACTIVE":
            rows.audit.append(
                {
                    **api_actor,
                    "id": ids(12),
                    "created_at": dep_created + dt.timedelta(hours=2, minutes=30),
                    "event_type": "CHAIN_DEPLOYMENT_DEACTIVATED",
                    "event_data": {
                        "event_type": "CHAIN_DEPLOYMENT_DEACTIVATED",
                        **dep_event,
                        "chain_deployment_name": dep_name,
                    },
                    "environment_name": None,
                    "chain_deployment_id": dep_id,
                }
            )
    rows.environments.append(
        {
            "id": env_id,
            "chain_id": chain_id,
            "name": "production",
            "created_at": created,
            "promotion_settings": promotion,
            "current_deployment_id": deployment_ids[-1],
            "candidate_deployment_id": None,
            "promotion_scale_down_previous": True,
            "last_promotion_error": None,
        }
    )
    for chainlet, _, _ in CHAINLETS:
        rows.settings.append(
            {
                "id": ids(),
                "environment_id": env_id,
                "chainlet_name": chainlet,
                "instance_type_id": BASE_TYPE,
                "autoscaling": autoscaling,
            }
        )
    return ChainRef(chain_id, deployment_ids)


def populate(
    url: str, n_chains: int, per_chain: int, seed: int, running_fraction: float = 1.0
) -> Population:
    """Migrates a fresh database and fills it with bulk inserts (no API, no ORM units of work)."""
    started = time.perf_counter()
    db = Database(url)
    db.migrate()
    ids = _Ids(random.Random(seed))
    rows = _Rows()
    now = dt.datetime.now(dt.UTC)
    # Chains a minute apart, their deployments an hour apart, all of it in the past.
    t0 = now - dt.timedelta(minutes=n_chains + OTHER_CHAINS, hours=per_chain + 2, days=1)
    ws_id, other_ws_id = ids(), ids()
    chains = [
        _add_chain(
            rows,
            ids,
            ws_id,
            f"chain-{i:05d}",
            t0 + dt.timedelta(minutes=i),
            per_chain,
            # Running chains spread evenly over the list.
            running=int((i + 1) * running_fraction) > int(i * running_fraction),
        )
        for i in range(n_chains)
    ]
    other = [
        _add_chain(
            rows, ids, other_ws_id, f"other-{i}", t0 + dt.timedelta(minutes=n_chains + i), 1
        ).id
        for i in range(OTHER_CHAINS)
    ]
    plan: list[tuple[Any, list[dict[str, Any]]]] = [
        (
            Workspace.__table__,
            [
                {"id": ws_id, "name": WORKSPACE, "created_at": t0},
                {"id": other_ws_id, "name": OTHER_WORKSPACE, "created_at": t0},
            ],
        ),
        (Chain.__table__, rows.chains),
        (ChainDeployment.__table__, rows.deployments),
        (Chainlet.__table__, rows.chainlets),
        (Environment.__table__, rows.environments),
        (ChainletEnvironmentSettings.__table__, rows.settings),
        (AuditLog.__table__, rows.audit),
    ]
    counts: dict[str, int] = {}
    with db.engine.begin() as conn:
        for table, table_rows in plan:
            for start in range(0, len(table_rows), 5000):
                conn.execute(insert(table), table_rows[start : start + 5000])
            counts[table.name] = len(table_rows)
        if not db.is_sqlite:
            # What autovacuum would do shortly after such a load; plans depend on it.
            conn.execute(text("ANALYZE"))
    db.dispose()
    return Population(chains, other, counts, time.perf_counter() - started)


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The server's background loops the benchmark times and can pause: (app.state attribute, module
# and function through which the loop loads its work each tick, so that the work is counted).
_LOOPS = {
    "reconciler": ("reconciler", "chainyard.services.reconciler_store", "load_work"),
    "autoscaler": ("autoscaler", "chainyard.services.autoscaler_store", "glance"),
}
# Started by the server (`ServerConfig.run_<name>`), or by the benchmark after the paused phase.


def serve(spec_path: str) -> None:
    """Child process: the real app under uvicorn, plus two routes of the benchmark's own, added to
    this app object only: one reports the background loops' ticks, one starts the loops (with
    `paused`, the server starts without them, as `run_reconciler=False` etc. allow)."""
    import importlib

    import uvicorn

    from chainyard.config import ServerConfig
    from chainyard.server import create_app

    spec = json.loads(pathlib.Path(spec_path).read_text())
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    flags = {f"run_{name}": False for name in _LOOPS if f"run_{name}" in known}
    config = ServerConfig(
        data_dir=pathlib.Path(spec["data_dir"]),
        database_url=spec["database_url"],
        runtime="simulated",
        bootstrap_api_key=API_KEY,
        reconcile_interval=spec["reconcile_interval"],
        # One client sends requests back to back, faster than the default per-key rate limit;
        # the benchmark measures latency, not the limit.
        rate_limit_per_second=0,
        **(flags if spec["paused"] else {}),
    )
    app = create_app(config)
    # loop -> [(end, seconds, items loaded)]
    ticks: dict[str, list[tuple[float, float, int]]] = {}
    loops: dict[str, Any] = {}

    def instrument(name: str, loop: Any, module_name: str, function: str) -> None:
        module = importlib.import_module(module_name)
        load = getattr(module, function)
        work = [0]

        def counted(*args: Any, **kwargs: Any) -> Any:
            items = load(*args, **kwargs)
            work[0] = len(items)
            return items

        # The loops call the function through its module, so this sees every tick.
        setattr(module, function, counted)
        tick = loop.tick
        ticks[name] = []

        async def timed_tick() -> None:
            started = time.perf_counter()
            try:
                await tick()
            finally:
                ticks[name].append((time.time(), time.perf_counter() - started, work[0]))

        loop.tick = timed_tick
        loops[name] = loop

    for name, (attribute, module_name, function) in _LOOPS.items():
        loop = getattr(app.state, attribute, None)
        if loop is not None:  # a tree without that loop
            instrument(name, loop, module_name, function)

    @app.get("/_bench/ticks", include_in_schema=False)
    def bench_ticks(since: float = 0.0) -> dict[str, Any]:
        return {name: [t for t in list(got) if t[0] >= since] for name, got in ticks.items()}

    started: set[str] = set()

    @app.post("/_bench/loops/start", include_in_schema=False)
    async def bench_start_loops() -> dict[str, Any]:
        # Async: the loops start on the server's event loop, as the app's lifespan starts them.
        if spec["paused"]:
            for name, loop in loops.items():
                if name not in started and f"run_{name}" in flags:
                    loop.start()
                    started.add(name)
        return {"started": sorted(started)}

    uvicorn.run(app, host="127.0.0.1", port=spec["port"], log_level="warning", access_log=False)


@contextlib.contextmanager
def running_server(
    url: str, work_dir: pathlib.Path, reconcile_interval: float, *, paused: bool
) -> Iterator[str]:
    port = _free_port()
    spec = work_dir / "server.json"
    spec.write_text(
        json.dumps(
            {
                "data_dir": str(work_dir / "data"),
                "database_url": url,
                "reconcile_interval": reconcile_interval,
                "port": port,
                "paused": paused,
            }
        )
    )
    log_path = work_dir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(pathlib.Path(__file__).resolve()), "--serve", str(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log_path.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        problems = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if "ERROR" in line or "Traceback" in line
        ]
        if problems:
            print(f"  server log has {len(problems)} error line(s), e.g. {problems[0][:200]}")


def _ticks(base: str, since: float) -> dict[str, list[list[float]]]:
    response = httpx.get(f"{base}/_bench/ticks", params={"since": since}, timeout=60)
    response.raise_for_status()
    ticks: dict[str, list[list[float]]] = response.json()
    return ticks


def _wait_first_tick(base: str, since: float) -> None:
    """The store says every chainlet runs until the reconciler's first tick finds none running."""
    while not _ticks(base, since).get("reconciler"):
        time.sleep(0.1)


def _wait_settled(db: Database, timeout: float) -> float:
    """Seconds until no chainlet is short of replicas, moving, or a promotion candidate."""
    started = time.perf_counter()
    moving = ["BUILDING", "DEPLOYING", "DEACTIVATING", "WAKING_UP", "UPDATING", "UNHEALTHY"]
    while True:
        with db.read() as session:
            busy = session.scalar(
                select(func.count())
                .select_from(Chainlet)
                .where(
                    (Chainlet.ready_replicas != Chainlet.desired_replicas)
                    | Chainlet.status.in_(moving)
                )
            )
            promoting = session.scalar(
                select(func.count())
                .select_from(Environment)
                .where(Environment.candidate_deployment_id.is_not(None))
            )
        if not busy and not promoting:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"not settled after {timeout:.0f}s: {busy} busy, {promoting} left")
        time.sleep(0.25)


# --- measurement --------------------------------------------------------------------------------


@dataclasses.dataclass
class Endpoint:
    name: str
    label: str
    kind: str  # "read", "update", or "floor" (no goal)
    iterations: int
    request: Callable[[int], tuple[str, str, dict[str, Any] | None]]  # i -> (method, path, json)


def _percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(p / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


def _time_requests(
    client: httpx.Client, endpoint: Endpoint, warmup: int
) -> tuple[list[float], int]:
    samples: list[float] = []
    total = warmup + endpoint.iterations
    size = 0
    for i in range(total):
        method, path, body = endpoint.request(i)
        started = time.perf_counter()
        response = client.request(method, path, json=body)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        if i >= warmup:
            samples.append(elapsed)
            size = len(response.content)
    return samples, size


def _summary(endpoint: Endpoint, samples: list[float], size: int) -> dict[str, Any]:
    ordered = sorted(samples)
    p50, p99 = _percentile(ordered, 50), _percentile(ordered, 99)
    goal_text, met = "-", None
    if endpoint.kind == "update":
        goal_text, met = f"p50 <= {UPDATE_P50_GOAL_MS:g} ms", p50 <= UPDATE_P50_GOAL_MS
    elif endpoint.kind == "read":
        goal_text, met = f"p99 <= {READ_P99_GOAL_MS:g} ms", p99 <= READ_P99_GOAL_MS
    return {
        "label": endpoint.label,
        "kind": endpoint.kind,
        "n": len(samples),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "max_ms": round(ordered[-1], 2),
        "response_bytes": size,
        "goal": goal_text,
        "goal_met": met,
    }


def _reads(pop: Population, rng: random.Random, iterations: int, unpaged: int) -> list[Endpoint]:
    chains = pop.chains

    def pick() -> ChainRef:
        return chains[rng.randrange(len(chains))]

    def get(path: Callable[[], str]) -> Callable[[int], tuple[str, str, None]]:
        return lambda _i: ("GET", path(), None)

    def env_path(suffix: str) -> Callable[[], str]:
        return lambda: f"/v1/chains/{pick().id}/environments{suffix}"

    def deployment() -> str:
        chain = pick()
        return f"/v1/chains/{chain.id}/deployments/{rng.choice(chain.deployment_ids)}"

    return [
        # No key, no database: what HTTP, uvicorn and FastAPI cost by themselves.
        Endpoint("healthz", "GET /healthz (floor)", "floor", iterations, get(lambda: "/healthz")),
        Endpoint("list_chains", "GET /v1/chains", "read", unpaged, get(lambda: "/v1/chains")),
        Endpoint(
            "list_chains_limit_100",
            "GET /v1/chains?limit=100",
            "read",
            iterations,
            get(lambda: "/v1/chains?limit=100"),
        ),
        Endpoint(
            "list_chains_limit_100_after",
            "GET /v1/chains?limit=100&after={random chain}",
            "read",
            iterations,
            get(lambda: f"/v1/chains?limit=100&after={pick().id}"),
        ),
        Endpoint(
            "get_chain",
            "GET /v1/chains/{id}",
            "read",
            iterations,
            get(lambda: f"/v1/chains/{pick().id}"),
        ),
        Endpoint(
            "list_deployments",
            "GET /v1/chains/{id}/deployments",
            "read",
            iterations,
            get(lambda: f"/v1/chains/{pick().id}/deployments"),
        ),
        Endpoint(
            "get_deployment",
            "GET /v1/chains/{id}/deployments/{id}",
            "read",
            iterations,
            get(deployment),
        ),
        Endpoint(
            "list_environments",
            "GET /v1/chains/{id}/environments",
            "read",
            iterations,
            get(env_path("")),
        ),
        Endpoint(
            "get_environment",
            "GET /v1/chains/{id}/environments/production",
            "read",
            iterations,
            get(env_path("/production")),
        ),
        Endpoint(
            "audit_logs",
            "GET /v1/chains/{id}/audit_logs",
            "read",
            iterations,
            get(lambda: f"/v1/chains/{pick().id}/audit_logs"),
        ),
    ]


def _update(targets: list[ChainRef], iterations: int) -> Endpoint:
    """The instance-type update, each call on a chain of its own (`targets`), so that none meets
    a promotion still in progress and each one creates a deployment."""

    def request(i: int) -> tuple[str, str, dict[str, Any]]:
        path = (
            f"/v1/chains/{targets[i].id}/environments/production"
            "/chainlet_settings/instance_types/update"
        )
        update = {"chainlet_name": "RandInt", "instance_type_id": UPDATE_TYPES[i % 2]}
        return "POST", path, {"updates": [update]}

    return Endpoint(
        "update_instance_types",
        "POST .../environments/production/chainlet_settings/instance_types/update",
        "update",
        iterations,
        request,
    )


def _check_isolation(client: httpx.Client, pop: Population) -> None:
    for chain_id in pop.other_chain_ids:
        response = client.get(f"/v1/chains/{chain_id}")
        if response.status_code != 404:
            raise RuntimeError(f"another workspace's chain answered {response.status_code}")
    listed = client.get("/v1/chains").json()["chains"]
    if len(listed) != len(pop.chains):
        raise RuntimeError(f"GET /v1/chains listed {len(listed)} chains, not {len(pop.chains)}")


def _tick_stats(base: str, since: float) -> dict[str, Any]:
    """Per background loop: ticks since `since`, their p50 and max, the share of the wall time
    spent in them, and the most items (chainlets) one tick loaded."""
    stats: dict[str, Any] = {}
    for name, ticks in _ticks(base, since).items():
        if not ticks:
            stats[name] = {"ticks": 0}
            continue
        seconds = sorted(t[1] for t in ticks)
        stats[name] = {
            "ticks": len(ticks),
            "p50_ms": round(_percentile(seconds, 50) * 1000, 1),
            "max_ms": round(seconds[-1] * 1000, 1),
            "busy_fraction": round(sum(seconds) / max(1e-9, time.time() - since), 3),
            "items_per_tick": int(max(t[2] for t in ticks)),
        }
    return stats


def _start_loops(base: str) -> None:
    response = httpx.post(f"{base}/_bench/loops/start", timeout=30)
    response.raise_for_status()


def _measure(
    db_name: str,
    phase: str,
    client: httpx.Client,
    pop: Population,
    args: argparse.Namespace,
    update_targets: list[ChainRef],
) -> dict[str, Any]:
    # The same seed in both phases: the same chains and deployments are read in the same order.
    rng = random.Random(args.seed)
    endpoints: dict[str, Any] = {}
    reads = _reads(pop, rng, args.iterations, args.unpaged_iterations)
    for endpoint in [*reads, _update(update_targets, args.iterations)]:
        samples, size = _time_requests(client, endpoint, args.warmup)
        endpoints[endpoint.name] = _summary(endpoint, samples, size)
        print(f"[{db_name}] {phase:<18} {_row(endpoint.name, endpoints[endpoint.name])}")
    return endpoints


def run_one(
    db_name: str, args: argparse.Namespace, url: str, work_dir: pathlib.Path
) -> dict[str, Any]:
    print(f"[{db_name}] populating {args.chains} chains x {args.deployments_per_chain} deployments")
    pop = populate(url, args.chains, args.deployments_per_chain, args.seed, args.running_fraction)
    print(f"[{db_name}] populated in {pop.seconds:.1f}s: {pop.rows}")
    per_phase = args.warmup + args.iterations
    targets = random.Random(args.seed + 1).sample(pop.chains, 2 * per_phase)
    result: dict[str, Any] = {
        "database": db_name,
        "population": {"rows": pop.rows, "seconds": round(pop.seconds, 1)},
        "phases": {},
    }
    db = Database(url)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        with (
            running_server(url, work_dir, args.reconcile_interval, paused=True) as base,
            httpx.Client(base_url=base, headers=headers, timeout=300) as client,
        ):
            _check_isolation(client, pop)
            if args.phases in ("both", "paused"):
                # 1. The API alone: the loops are paused (the updates' deployments wait).
                probe = run_info.cpu_probe_ms()
                endpoints = _measure(db_name, "paused", client, pop, args, targets[:per_phase])
                result["phases"]["loops_paused"] = {"endpoints": endpoints, "cpu_probe_ms": probe}
            if args.phases == "paused":
                return result
            # 2. The loops start; the reconciler as after a restart: the store says 2 x N
            # chainlets run, the simulated runtime runs none. It also promotes phase 1's updates.
            resumed = time.time()
            _start_loops(base)
            _wait_first_tick(base, resumed)
            _wait_settled(db, timeout=900)
            result["restart"] = {
                "settled_seconds": round(time.time() - resumed, 1),
                "loops": _tick_stats(base, resumed),
            }
            print(f"[{db_name}] settled {time.time() - resumed:.1f}s after the loops started")
            # 3. The same requests with the loops running, as a server runs.
            running = time.time()
            probe = run_info.cpu_probe_ms()  # the loops idle meanwhile (a settled fleet)
            endpoints = _measure(db_name, "running", client, pop, args, targets[per_phase:])
            during = _tick_stats(base, running)
            settle = _wait_settled(db, timeout=900)
            result["phases"]["loops_running"] = {
                "endpoints": endpoints,
                "loops": during,
                "promotions_settled_seconds_after_last_update": round(settle, 1),
                "cpu_probe_ms": probe,
            }
            updated = 2 * per_phase if args.phases == "both" else per_phase
            _check_promotions(db, updated)
    finally:
        db.dispose()
    return result


def _check_promotions(db: Database, expected: int) -> None:
    """Every update made a deployment that is now production's current, ACTIVE deployment."""
    with db.read() as session:
        promoted = session.scalar(
            select(func.count())
            .select_from(Environment)
            .join(ChainDeployment, ChainDeployment.id == Environment.current_deployment_id)
            .where(ChainDeployment.source_deployment_id.is_not(None))
            .where(ChainDeployment.status == "ACTIVE")
        )
    if promoted != expected:
        raise RuntimeError(f"{promoted} environments were promoted, expected {expected}")


# --- reporting ----------------------------------------------------------------------------------


def _row(name: str, s: dict[str, Any]) -> str:
    met = {True: "yes", False: "NO", None: "-"}[s["goal_met"]]
    return (
        f"{name:<28} {s['n']:>5} {s['p50_ms']:>9.2f} {s['p99_ms']:>9.2f} {s['mean_ms']:>9.2f} "
        f"{s['max_ms']:>9.2f}  {s['goal']:<14} {met}"
    )


def print_table(result: dict[str, Any]) -> None:
    for phase, data in result["phases"].items():
        print()
        print(f"== {result['database']}, {phase} ==")
        print(
            f"{'endpoint':<28} {'N':>5} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'max ms':>9}  "
            f"{'goal':<14} met"
        )
        for name, summary in data["endpoints"].items():
            print(_row(name, summary))
        if "loops" in data:
            print(f"background loops meanwhile: {data['loops']}")
        if "cpu_probe_ms" in data:
            print(f"cpu probe before the phase (ms, lower is faster): {data['cpu_probe_ms']}")
    if "restart" in result:
        print(f"restart: {result['restart']}")
    if "update_p50_running_over_paused" in result:
        print(f"update p50, loops running / paused: {result['update_p50_running_over_paused']}")
    if "cpu_probe_ms" in result:
        print(f"cpu probe (ms, lower is faster): {result['cpu_probe_ms']}")


# --- entry point --------------------------------------------------------------------------------


@contextlib.contextmanager
def database_url(db_name: str, work_dir: pathlib.Path) -> Iterator[str]:
    if db_name == "sqlite":
        yield f"sqlite:///{work_dir / 'chainyard.db'}"
        return
    sys.path.insert(0, str(ROOT))
    from tests.support import postgres

    with postgres.running_server() as admin_url:
        version = subprocess.run(
            [str(postgres.find_bindir() / "postgres"), "--version"],  # type: ignore[operator]
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"[postgres] {version}")
        yield postgres.create_database(admin_url, "chainyard_bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--chains", type=int, default=10_000)
    parser.add_argument("--deployments-per-chain", type=int, default=5)
    parser.add_argument(
        "--running-fraction",
        type=float,
        default=1.0,
        help="share of chains whose current deployment runs (1 replica per chainlet); the others "
        "are SCALED_TO_ZERO, as idle chains end up",
    )
    parser.add_argument("--iterations", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument(
        "--unpaged-iterations", type=int, default=20, help="timed unpaged GET /v1/chains"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per endpoint")
    parser.add_argument(
        "--phases",
        choices=("both", "paused", "running"),
        default="both",
        help="measure with the reconciler paused, running, or both (default)",
    )
    parser.add_argument("--reconcile-interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 chains, 50 requests")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.iterations, args.unpaged_iterations, args.warmup = 200, 50, 10, 5
    if not 0 <= args.running_fraction <= 1:
        parser.error("--running-fraction must be between 0 and 1")
    if 2 * (args.warmup + args.iterations) > args.chains:
        parser.error("2 x (--warmup + --iterations) must not exceed --chains (one update a chain)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for db_name in databases:
        work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"chainyard-bench-{db_name}-"))
        started = time.perf_counter()
        commit = run_info.commit()  # what the server about to start imports
        probe_before = run_info.cpu_probe_ms()
        try:
            with database_url(db_name, work_dir) as url:
                result = run_one(db_name, args, url, work_dir)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        result["machine"] = run_info.machine()
        result["cpu_probe_ms"] = {"before": probe_before, "after": run_info.cpu_probe_ms()}
        phases = result["phases"]
        if "loops_paused" in phases and "loops_running" in phases:
            # The loops' cost to the update, against the paused phase of the same run.
            running, paused = (
                phases[name]["endpoints"]["update_instance_types"]["p50_ms"]
                for name in ("loops_running", "loops_paused")
            )
            result["update_p50_running_over_paused"] = round(running / paused, 2)
        result["commit"] = commit
        result["params"] = {k: v for k, v in vars(args).items() if k not in ("out", "serve", "db")}
        result["run_seconds"] = round(time.perf_counter() - started, 1)
        result["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        suffix = "-quick" if args.quick else ""
        if args.running_fraction != 1.0:
            suffix += f"-running{round(args.running_fraction * 100)}"
        path = args.out / f"control_plane-{db_name}{suffix}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        results.append(result)
        print(f"[{db_name}] done in {result['run_seconds']}s, wrote {path}")
    for result in results:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
