"""Live patching benchmark (issue 18): from saving a chainlet's file to the first request answered
by the new code, through `chainyard push --watch` on a real server.

1. A real `chainyard serve --runtime local` (autoscale.Chainyard) and a two-chainlet chain (Entry
   calls Dep; both answer with a version string), pushed with `chainyard push --watch`.
2. **Code-only change**: the chain file is rewritten with the next version string; the clock
   starts when the write is done, and stops at the first answer of
   `/chains/{id}/development/run_remote` that carries the new version (polled back to back on one
   keep-alive connection). Repeated `--rounds` times.
3. **Requirement change**: the same, with a `pip_requirements` entry added to (then removed from)
   Dep's image as well, so that the server rebuilds Dep's environment before switching. The
   requirement is one the server's environment already has: the rebuild resolves it without
   downloading, as a cached requirement would on Baseten.
4. **What the spare host avoids**: the wall time of a fresh interpreter importing
   `truss_chains` (what a replica host pays before it can load a chain), median of three.

Nothing here asserts a time: the goal (code-only change ≤ 1 s) is reported, not enforced.
Usage: python bench/watch.py [--rounds N] [--requirement-rounds N] [--out bench/results]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
import run_info
from autoscale import API_KEY, Chainyard

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOAL_SECONDS = 1.0
CHAIN_NAME = "watch-bench"

CHAIN = """
import truss_chains as chains

VERSION = "{version}"


class Dep(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        docker_image=chains.DockerImage(pip_requirements={requirements})
    )

    async def run_remote(self, x: int) -> str:
        return VERSION + ":" + str(x)


@chains.mark_entrypoint
class Entry(chains.ChainletBase):
    def __init__(self, dep: Dep = chains.depends(Dep)) -> None:
        self._dep = dep

    async def run_remote(self, x: int) -> str:
        return "entry-" + VERSION + "/" + await self._dep.run_remote(x)
"""


def write_chain(path: pathlib.Path, version: str, requirements: list[str]) -> None:
    text = CHAIN.format(version=version, requirements=json.dumps(requirements))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    # One event for the watcher, as an editor's save gives.
    os.replace(tmp, path)


def expected(version: str) -> str:
    return f"entry-{version}/{version}:1"


class Watch:
    """`chainyard push --watch` in a child process, its output in a file."""

    def __init__(self, server: Chainyard, chain_file: pathlib.Path, log: pathlib.Path) -> None:
        env = {**os.environ, "CHAINYARD_URL": server.url, "CHAINYARD_API_KEY": API_KEY}
        command = [sys.executable, "-m", "chainyard.cli.main", "push", str(chain_file)]
        command += ["--name", CHAIN_NAME, "--watch"]
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # Ctrl-C ends it: not ignored, even when this runs as a background job.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def development_url(server: Chainyard, timeout: float = 600) -> str:
    """The chain's `/development/run_remote`, once the chain exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chains = server.api.get("/v1/chains").json().get("chains", [])
        found = [c for c in chains if c.get("name") == CHAIN_NAME]
        if found:
            return f"{server.url}/chains/{found[0]['id']}/development/run_remote"
        time.sleep(0.2)
    raise RuntimeError("the chain was not pushed")


def until_answer(client: httpx.Client, url: str, want: str, timeout: float) -> float:
    """Calls back to back until the answer is `want`; the time it took."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            answer = client.post(url, json={"x": 1})
            if answer.status_code == 200 and answer.json() == want:
                return time.perf_counter() - started
        time.sleep(0.002)
    raise RuntimeError(f"no answer {want!r} within {timeout} s")


def import_cost(samples: int = 3) -> dict[str, float]:
    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - started

    bare = statistics.median(wall("pass") for _ in range(samples))
    truss = statistics.median(wall("import truss_chains") for _ in range(samples))
    return {"interpreter_s": round(bare, 3), "truss_chains_import_s": round(truss - bare, 3)}


def summary_of(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "samples_s": [round(s, 3) for s in samples],
        "median_s": round(statistics.median(ordered), 3),
        "max_s": round(ordered[-1], 3),
    }


def run(args: argparse.Namespace, work_dir: pathlib.Path) -> dict[str, Any]:
    chain_dir = work_dir / "chain"
    chain_dir.mkdir()
    chain_file = chain_dir / "chain.py"
    write_chain(chain_file, "v0", [])
    results: dict[str, Any] = {}
    with Chainyard(work_dir, reconcile_interval=None) as server:
        watch = Watch(server, chain_file, work_dir / "watch.log")
        try:
            url = development_url(server)
            client = httpx.Client(headers={"Authorization": f"Api-Key {API_KEY}"}, timeout=60)
            until_answer(client, url, expected("v0"), timeout=600)
            # The watcher starts after the push is active; its first sync must be done too.
            time.sleep(args.settle)
            code: list[float] = []
            for n in range(1, args.rounds + 1):
                write_chain(chain_file, f"v{n}", [])
                code.append(until_answer(client, url, expected(f"v{n}"), timeout=120))
                print(f"code-only change {n}: {code[-1]:.3f} s", flush=True)
                time.sleep(args.pause)
            requirement: list[float] = []
            for n in range(1, args.requirement_rounds + 1):
                version = f"r{n}"
                wanted = ["msgpack"] if n % 2 else []
                write_chain(chain_file, version, wanted)
                requirement.append(until_answer(client, url, expected(version), timeout=600))
                print(f"requirement change {n}: {requirement[-1]:.3f} s", flush=True)
                time.sleep(args.pause)
            client.close()
        finally:
            watch.stop()
        results["watch_output_tail"] = watch.log.read_text(errors="replace")[-4000:]
    results["code_only"] = summary_of(code)
    results["requirement"] = summary_of(requirement) if requirement else None
    results["import_cost"] = import_cost()
    results["goal"] = {
        "goal": f"code-only change <= {GOAL_SECONDS} s (median)",
        "value_s": results["code_only"]["median_s"],
        "met": results["code_only"]["median_s"] <= GOAL_SECONDS,
    }
    return results


def table(results: dict[str, Any]) -> str:
    code = results["code_only"]
    lines = [
        "from saving the file to the first answer by the new code",
        f"  code-only change    median {code['median_s']:.3f} s, max {code['max_s']:.3f} s "
        f"({len(code['samples_s'])} saves)",
    ]
    if results.get("requirement"):
        req = results["requirement"]
        lines.append(
            f"  requirement change  median {req['median_s']:.3f} s, max {req['max_s']:.3f} s "
            f"({len(req['samples_s'])} saves)"
        )
    cost = results["import_cost"]
    lines.append(
        f"what a fresh replica host would pay first: interpreter {cost['interpreter_s']:.3f} s "
        f"+ importing truss_chains {cost['truss_chains_import_s']:.3f} s"
    )
    goal = results["goal"]
    lines.append(
        f"goal: {goal['goal']}: {goal['value_s']:.3f} s, {'met' if goal['met'] else 'NOT MET'}"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="code-only saves")
    parser.add_argument("--requirement-rounds", type=int, default=2, help="requirement saves")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between saves")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the push is active"
    )
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="3 code-only saves, 1 requirement")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requirement_rounds = 3, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "commit": run_info.commit(),
        "machine": run_info.machine(),
        "load_average_before": list(os.getloadavg()),
        "cpu_probe_ms_before": run_info.cpu_probe_ms(),
        "params": {k: str(v) if k == "out" else v for k, v in vars(args).items()},
    }
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix="chainyard-watch-"))
    try:
        results.update(run(args, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results["cpu_probe_ms_after"] = run_info.cpu_probe_ms()
    name = "watch" + ("-quick" if args.quick else "") + ".json"
    run_info.finish(results, args.out / name, started, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
