"""What the replica sandbox costs: push-to-ACTIVE and cold start from zero, sandbox on against off.

Issue #16 asks that running each deployment's replica host under bubblewrap
(src/chainyard/runtime/sandbox.py) keep both within 10 % of an unsandboxed server. The machine is
shared and noisy, so the baseline is measured in the same run: two real
`chainyard serve --runtime local` servers, up side by side, one with `--sandbox off` and one with
`--sandbox required`, measured in turn (off, on, off, on, ...; each round starts with the other
one than the round before, so that neither always goes first). Before each measurement both servers
are at rest: the previous push's chain deleted and its replicas gone, or both cold-start chainlets
back at zero.

1. **Push to ACTIVE**: `chainyard push bench/chains/noop.py --name <fresh> --promote` (without
   `--wait`, whose 0.5 s polling would blur the difference), then the deployment polled every
   0.05 s (`GET /v1/chains/{id}/deployments/{id}`) until ACTIVE. Timed from starting the CLI
   process until the first poll that sees ACTIVE (`push_to_active_s`). Its parts: the CLI itself
   (`push_cli_s`: interpreter start, importing the chain, packing, the deploy request; the sandbox
   plays no part in it) and what follows (`accepted_to_active_s`: the server starts the
   deployment's replica host, under bwrap or not, the host imports the chain and forks the replica,
   which must pass its health check). Each push is a fresh chain; one untimed push per server
   first, so that neither pays for a first environment or import cache.
2. **Cold start from zero**: autoscale.py's, on a no-op chain per server (min_replica 0,
   scale_down_delay 0): one request to a chainlet at zero, timed end to end, and the server's own
   `chainyard_cold_start_seconds`. The deployment's host stays up at zero (it forks the next
   replica), so this measures a fork inside the sandbox, not a new sandbox.
3. **Where the time goes** (outside the servers, interleaved the same way): a bare `bwrap` with the
   sandbox's namespaces and system binds running `/bin/true` against `/bin/true` alone, and a
   replica host for the no-op chain started as runtime/local.py starts one, in its sandbox
   (sandbox.command) or not, until it reports "ready" (truss_chains and the chain imported).

Reported: medians per mode, the ratio on/off of the medians (the goal: <= 1.10) and, as a check on
noise, the median of each round's own on/off ratio.

Usage: python bench/sandbox_cost.py [--pushes 5] [--cold-repeats 5] [--quick] [--out bench/results]
See bench/README.md; results and their reading are in docs/bench.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import autoscale
import run_info
from autoscale import CHAINYARD_COLD, NOOP, ROOT, Chainyard

MODES = ("off", "required")
GOAL_RATIO = 1.10
ACTIVE_POLL_SECONDS = 0.05
FAILED = {"BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "BUILD_STOPPED"}


@contextlib.contextmanager
def servers(reconcile_interval: float | None) -> Iterator[dict[str, Chainyard]]:
    """Both servers, each in a temporary data dir of its own; their log tails on an error."""
    dirs = {mode: pathlib.Path(tempfile.mkdtemp(prefix=f"chainyard-sb-{mode}-")) for mode in MODES}
    try:
        with contextlib.ExitStack() as stack:
            up = {
                mode: stack.enter_context(Chainyard(dirs[mode], reconcile_interval, sandbox=mode))
                for mode in MODES
            }
            for mode, cy in up.items():
                sandbox = (
                    cy.api.get("/healthz").json().get("protections", {}).get("replica_sandbox")
                )
                print(f"chainyard --sandbox {mode} on {cy.url}: replica_sandbox {sandbox}")
                if sandbox != ("off" if mode == "off" else "on"):
                    raise RuntimeError(f"--sandbox {mode} serves with replica_sandbox {sandbox}")
            yield up
    except BaseException:
        for mode, path in dirs.items():
            log = path / "server.log"
            if log.exists():
                tail = log.read_text()[-3000:]
                print(f"--sandbox {mode} server log (tail):\n{tail}", file=sys.stderr)
        raise
    finally:
        for path in dirs.values():
            shutil.rmtree(path, ignore_errors=True)


def rounds(n: int) -> Iterator[tuple[int, str]]:
    """(round, mode) for n rounds, each mode once per round; the first mode alternates."""
    for i in range(n):
        for mode in MODES if i % 2 == 0 else MODES[::-1]:
            yield i, mode


# --- push to ACTIVE -------------------------------------------------------------------------------


def push_to_active(cy: Chainyard, name: str) -> dict[str, Any]:
    started = time.monotonic()
    ids = cy.push(NOOP, name, wait=False)
    accepted = time.monotonic()
    chain_id, deployment_id = ids["chain_id"], ids["chain_deployment_id"]
    deadline = accepted + 300
    while True:
        deployment = cy.api.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}").json()
        if deployment["status"] == "ACTIVE":
            active = time.monotonic()
            break
        if deployment["status"] in FAILED or time.monotonic() > deadline:
            raise RuntimeError(f"push {name}: {deployment['status']}, not ACTIVE")
        time.sleep(ACTIVE_POLL_SECONDS)
    chainlet_id = deployment["chainlets"][0]["id"]
    cy.delete(chain_id)
    autoscale._wait_gone(cy, chainlet_id)
    return {
        "push_to_active_s": round(active - started, 3),
        "push_cli_s": round(accepted - started, 3),
        "accepted_to_active_s": round(active - accepted, 3),
    }


def measure_pushes(up: dict[str, Chainyard], n: int) -> dict[str, Any]:
    for mode, cy in up.items():
        warmup = push_to_active(cy, "sandbox-warmup")
        print(f"  push warm-up, --sandbox {mode}: {warmup}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for i, mode in rounds(n):
        runs[mode].append(push_to_active(up[mode], f"sandbox-push-{mode}-{i}"))
        print(f"  push {i}, --sandbox {mode}: {runs[mode][-1]}", flush=True)
    keys = ("push_to_active_s", "push_cli_s", "accepted_to_active_s")
    return compare(runs, keys)


# --- cold start from zero -------------------------------------------------------------------------


def measure_cold_starts(up: dict[str, Chainyard], n: int) -> dict[str, Any]:
    chains: dict[str, tuple[str, str, str]] = {}
    for mode, cy in up.items():
        ids = cy.push(NOOP, "sandbox-cold-start")
        chain_id, deployment_id = ids["chain_id"], ids["chain_deployment_id"]
        chainlet = cy.chainlet(chain_id, deployment_id)
        cy.autoscaling(chain_id, chainlet["name"], CHAINYARD_COLD)
        chains[mode] = (chain_id, deployment_id, chainlet["id"])
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for i, mode in rounds(n):
        for other in MODES:
            if other != mode:
                autoscale.wait_scaled_to_zero(up[other], *chains[other][:2])
        chain_id, deployment_id, chainlet_id = chains[mode]
        to_zero = autoscale.wait_scaled_to_zero(up[mode], chain_id, deployment_id)
        run = autoscale.cold_start_once(up[mode], chain_id, chainlet_id)
        runs[mode].append({**run, "scaled_to_zero_after_idle_s": to_zero})
        print(f"  cold start {i}, --sandbox {mode}: {runs[mode][-1]}", flush=True)
    for mode, cy in up.items():
        cy.delete(chains[mode][0])
    return compare(runs, ("end_to_end_s", "server_cold_start_s"))


# --- where the time goes --------------------------------------------------------------------------


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def _host_ready(sandboxed: bool) -> float:
    """Seconds from starting a replica host for bench/chains/noop.py until it reports "ready"
    (it has imported truss_chains and the chain): what runtime/local.py's `_start_host` waits
    for, launched the same way (argv, environment, a deployment's layout in a scratch data dir)."""
    from chainyard.runtime import replica_env, sandbox

    with tempfile.TemporaryDirectory(prefix="chainyard-sb-host-") as tmp:
        data_dir = pathlib.Path(tmp)
        source, home = data_dir / "sources" / "noop", data_dir / "scratch" / "noop"
        shutil.copytree(NOOP.parent, source)
        home.mkdir(parents=True)
        argv = [sys.executable, "-m", "chainyard.chains.host", str(source), NOOP.name]
        if sandboxed:
            read_only = (source, sandbox.interpreter_root(sys.executable))
            writable = (home, data_dir / "logs" / "noop", data_dir / "run" / "noop")
            argv = sandbox.command(argv, sandbox.Layout(data_dir, read_only, writable, source))
        started = time.perf_counter()
        with open(data_dir / "host.log", "wb") as log:
            host = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=source,
                env=replica_env.replica_env(home=home),
            )
        assert host.stdout is not None and host.stdin is not None
        line = host.stdout.readline()
        ready = time.perf_counter() - started
        host.stdin.close()  # the host exits when its stdin closes
        host.wait(30)
        if b'"ready"' not in line:
            raise RuntimeError(f"the replica host did not start: {line[:300]!r}")
        return ready


def measure_parts(n: int) -> dict[str, Any]:
    """Process starts with and without the sandbox, outside any server: a bare bwrap (the
    sandbox's namespaces and system binds) running /bin/true, and a replica host until ready."""
    from chainyard.runtime import sandbox

    exe = sandbox.bwrap()
    if exe is None or sandbox.problem() is not None:
        return {"skipped": sandbox.problem() or "no bwrap"}
    bare = [exe, *sandbox._namespaces(), *sandbox._system_binds(), "--", "/bin/true"]
    kinds: dict[str, tuple[Callable[[], float], Callable[[], float]]] = {
        "true": (lambda: _timed(["/bin/true"]), lambda: _timed(bare)),
        "host_ready": (lambda: _host_ready(False), lambda: _host_ready(True)),
    }
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _, mode in rounds(n):
        on = mode == "required"
        runs[mode].append({f"{k}_s": round(pair[on](), 4) for k, pair in kinds.items()})
    out = compare(runs, ("true_s", "host_ready_s"))
    for key in ("true_s", "host_ready_s"):
        off, on = out["off"][f"median_{key}"], out["required"][f"median_{key}"]
        out[f"added_{key}"] = round(on - off, 4) if None not in (on, off) else None
    print(f"  process starts: {_parts_brief(out)}", flush=True)
    return out


# --- results --------------------------------------------------------------------------------------


def compare(runs: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Medians per mode, the ratio on/off of the medians, and the median of the rounds' own
    ratios (round i's on against round i's off)."""

    def values(mode: str, key: str) -> list[float]:
        return [r[key] for r in runs[mode] if r.get(key) is not None]

    out: dict[str, Any] = {}
    for mode in MODES:
        out[mode] = {}
        for key in keys:
            vs = values(mode, key)
            out[mode][f"median_{key}"] = round(statistics.median(vs), 4) if vs else None
            out[mode][f"range_{key}"] = [min(vs), max(vs)] if vs else None
        out[mode]["runs"] = runs[mode]
    for key in keys:
        off, on = out["off"][f"median_{key}"], out["required"][f"median_{key}"]
        out[f"ratio_{key}"] = round(on / off, 3) if off and on is not None else None
        paired = [
            b[key] / a[key]
            for a, b in zip(runs["off"], runs["required"], strict=False)
            if a.get(key) and b.get(key) is not None
        ]
        out[f"paired_ratio_{key}"] = round(statistics.median(paired), 3) if paired else None
    return out


def verdict(data: dict[str, Any], key: str) -> str:
    """Met or missed by the ratio of the medians; with a note when the two modes' ranges overlap,
    so that a reader does not take a difference inside this run's noise for a cost."""
    ratio = data[f"ratio_{key}"]
    if ratio is None:
        return "not measured"
    said = f"{'met' if ratio <= GOAL_RATIO else 'MISSED'} ({(ratio - 1) * 100:+.1f} %)"
    off, on = data["off"][f"range_{key}"], data["required"][f"range_{key}"]
    if off and on and on[0] <= off[1] and off[0] <= on[1]:
        said += ", ranges overlap"
    return said


def _parts_brief(parts: dict[str, Any]) -> str:
    if "skipped" in parts:
        return f"skipped: {parts['skipped']}"
    off, on = parts["off"], parts["required"]
    return (
        f"/bin/true {off['median_true_s'] * 1000:.1f} ms, in bwrap "
        f"{on['median_true_s'] * 1000:.1f} ms; replica host ready "
        f"{off['median_host_ready_s']:.2f} s, in its sandbox {on['median_host_ready_s']:.2f} s"
    )


def table(results: dict[str, Any]) -> str:
    fmt = autoscale._fmt
    lines = [
        f"sandbox cost, medians (goal: on/off <= {GOAL_RATIO:.2f})",
        f"{'':<36}{'off':>10}{'on':>10}{'on/off':>9}{'paired':>9}  verdict",
    ]
    for section, key, label in (
        ("push", "push_to_active_s", "push to ACTIVE"),
        ("push", "push_cli_s", "  of which the push CLI"),
        ("push", "accepted_to_active_s", "  of which accepted -> ACTIVE"),
        ("cold_start", "end_to_end_s", "cold start from zero, end to end"),
        ("cold_start", "server_cold_start_s", "  server-side"),
    ):
        data = results.get(section)
        if not data:
            continue
        off, on = data["off"][f"median_{key}"], data["required"][f"median_{key}"]
        ratio, paired = data[f"ratio_{key}"], data[f"paired_ratio_{key}"]
        judged = verdict(data, key) if not label.startswith("  ") else ""
        lines.append(
            f"{label:<36}{fmt(off):>10}{fmt(on):>10}{fmt(ratio, ''):>9}{fmt(paired, ''):>9}"
            f"  {judged}"
        )
    if results.get("parts"):
        lines.append(f"process starts: {_parts_brief(results['parts'])}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=5, help="timed pushes per mode")
    parser.add_argument("--cold-repeats", type=int, default=5, help="cold starts per mode")
    parser.add_argument("--parts", type=int, default=5, help="process starts per mode and kind")
    parser.add_argument(
        "--reconcile-interval",
        type=float,
        default=None,
        help="chainyard serve's --reconcile-interval (default: the server's own, 1 s)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="2 pushes, 2 cold starts per mode")
    args = parser.parse_args(argv)
    if args.quick:
        args.pushes, args.cold_repeats, args.parts = 2, 2, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "commit": run_info.commit(),
        "machine": run_info.machine(),
        "load_average_before": list(os.getloadavg()),
        "params": {k: str(v) if k == "out" else v for k, v in vars(args).items()},
        "goal_ratio": GOAL_RATIO,
    }
    print("== where the time goes: process starts ==", flush=True)
    results["parts"] = measure_parts(args.parts)
    with servers(args.reconcile_interval) as up:
        print("== push to ACTIVE ==", flush=True)
        results["push"] = measure_pushes(up, args.pushes)
        results["load_average_after_pushes"] = list(os.getloadavg())
        print("== cold start from zero ==", flush=True)
        results["cold_start"] = measure_cold_starts(up, args.cold_repeats)
    results["verdict"] = {
        "push_to_active": verdict(results["push"], "push_to_active_s"),
        "cold_start": verdict(results["cold_start"], "end_to_end_s"),
    }
    results["load_average_after"] = list(os.getloadavg())
    path = args.out / f"sandbox_cost{'-quick' if args.quick else ''}.json"
    run_info.finish(results, path, started, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
