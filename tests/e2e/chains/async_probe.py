"""One chainlet for the async inference tests, told by its input what to do: wait for a gate file,
sleep, fail the first N runs of a tag, and log every run (start and end) to a file the test
reads. It takes many calls at once, so the per-deployment async cap, not the replica, is what
limits a backlog.

The log (JSON lines, appended with one write each) is the record of every run, including runs
whose results were never delivered: the tests find overlapping runs of one request there.
"""

import asyncio
import json
import os
import time
import uuid

import pydantic
import truss_chains as chains


def _append(log: str, event: dict) -> None:
    # One write of one line under O_APPEND: lines of concurrent runs never interleave.
    line = (json.dumps(event) + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _runs_so_far(log: str, tag: str) -> int:
    if not log or not os.path.exists(log):
        return 0
    with open(log) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return sum(1 for e in events if e["tag"] == tag and e["event"] == "start")


class Run(pydantic.BaseModel):
    tag: str
    run: int
    start: float
    end: float
    pid: int


@chains.mark_entrypoint("async_probe")
class AsyncProbe(chains.ChainletBase):
    remote_config = chains.RemoteConfig(compute=chains.Compute(predict_concurrency=64))

    async def run_remote(
        self,
        tag: str,
        sleep: float = 0.0,
        fail_times: int = 0,
        gate: str = "",
        log: str = "",
    ) -> Run:
        run = _runs_so_far(log, tag) + 1
        # Two runs of one request at once would count the same `run`: the id tells them apart.
        run_id = uuid.uuid4().hex
        start = time.time()
        if log:
            _append(log, {"tag": tag, "id": run_id, "event": "start", "run": run, "at": start})
        deadline = time.monotonic() + 120
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if sleep:
            await asyncio.sleep(sleep)
        end = time.time()
        failing = run <= fail_times
        if log:
            _append(
                log,
                {
                    "tag": tag,
                    "id": run_id,
                    "event": "end",
                    "run": run,
                    "at": end,
                    "failed": failing,
                },
            )
        if failing:
            raise RuntimeError(f"{tag}: failing run {run} of {fail_times}")
        return Run(tag=tag, run=run, start=start, end=end, pid=os.getpid())
