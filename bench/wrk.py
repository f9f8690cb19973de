"""Runs `wrk` (Debian's package, 4.1) with a POST body and reads its `--latency` report.

The body and headers go in through a generated Lua script (wrk.method/wrk.body/wrk.headers); the
script reads the body from a file, so a 1 MB body is never part of a command line or a script.
Failures are every answer wrk counts as non-2xx/3xx plus every socket error (connect, read, write,
timeout). `parse` is a pure function of wrk's output, tested on captured reports in
tests/bench/test_data_plane_parse.py.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
from typing import Any

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def lua_script(body_file: pathlib.Path, headers: dict[str, str]) -> str:
    """The script for a POST of `body_file`'s bytes as JSON with `headers`. Values are written as
    JSON strings, which Lua reads the same for printable ASCII (checked)."""
    values = [str(body_file), *headers, *headers.values()]
    if not all(v.isascii() and v.isprintable() for v in values):
        raise ValueError("wrk script values must be printable ASCII")
    lines = [
        f"local f = assert(io.open({json.dumps(str(body_file))}, 'rb'))",
        "wrk.body = f:read('*a')",
        "f:close()",
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def seconds(text: str) -> float:
    """wrk's time format ("812.00us", "1.25ms", "2.00s", "1.00m") in seconds."""
    match = re.fullmatch(_TIME, text.strip())
    if not match:
        raise ValueError(f"not a wrk time: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> dict[str, Any]:
    """wrk's report as numbers: rps, p50/p75/p90/p99 in seconds, requests, failures and their
    kinds. Raises ValueError when the report is not there (wrk could not run the test)."""
    requests = re.search(r"^\s*(\d+) requests in " + _TIME, output, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if not requests or not rps:
        raise ValueError(f"no wrk report in:\n{output[-2000:]}")
    percentiles = {
        f"p{p}_s": seconds(value)
        for p, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE)
    }
    if len(percentiles) != 4:
        raise ValueError(f"no latency distribution (run wrk with --latency) in:\n{output[-2000:]}")
    # wrk prints these two lines only when a count is not zero.
    kinds = ("connect", "read", "write", "timeout")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    counts = map(int, sockets.groups()) if sockets else (0, 0, 0, 0)
    errors = dict(zip(kinds, counts, strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    return {
        "rps": float(rps.group(1)),
        **percentiles,
        "requests": int(requests.group(1)),
        "duration_s": seconds(requests.group(2) + requests.group(3)),
        "failures": sum(errors.values()),
        "errors": errors,
    }


def run(
    url: str,
    script: pathlib.Path,
    connections: int,
    duration_s: int,
    threads: int = 1,
    timeout_s: int = 10,
) -> dict[str, Any]:
    """One wrk run; its parsed report, or {"error": ...} when wrk produced none."""
    command = [
        wrk_binary(),
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + timeout_s + 30
    )
    try:
        return parse(done.stdout)
    except ValueError:
        return {"error": f"wrk exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}"}


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed: run scripts/system-deps.sh bench (as root)")
    return found
