"""`chainyard logs CHAIN`: build and replica output of a deployment's chainlets, merged in time
order; `-f` keeps polling for new lines."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from chainyard.cli.commands.chains import ChainArg
from chainyard.cli.interrupt import Interrupt, deferred_interrupt
from chainyard.cli.session import ExitCode, Session, connected
from chainyard.schemas import ChainDeploymentV1, ChainletV1, LogLevelV1, LogV1
from chainyard.sdk import RateLimited

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Replica output can be stored a little after it was written, with its own (earlier)
# timestamp: each poll looks back this far and drops the lines it has already shown.
_LOOKBACK_MS = 10_000
_PAGE = 1000


def parse_duration(text: str) -> float:
    """Seconds in '90', '45s', '30m', '2h' or '1d'."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 30m, 2h, 1d)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def _deployment(
    s: Session, chain_id: str, environment: str | None, deployment: str | None
) -> ChainDeploymentV1:
    if deployment is not None:
        if environment is not None:
            s.fail("give --env or --deployment, not both", ExitCode.USAGE)
        return s.client.deployments.get(chain_id, deployment)
    name = environment or "production"
    env = s.client.environments.get(chain_id, name)
    found = env.current_deployment or env.candidate_deployment
    if found is None:
        s.fail(f"environment '{name}' has no deployment; use --deployment", ExitCode.NOT_FOUND)
    return found


def _chosen(s: Session, deployment: ChainDeploymentV1, names: list[str] | None) -> list[ChainletV1]:
    if not names:
        return list(deployment.chainlets)
    by_name = {c.name: c for c in deployment.chainlets}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        s.fail(
            f"no chainlet {', '.join(unknown)} in deployment {deployment.id} "
            f"(chainlets: {', '.join(sorted(by_name))})",
            ExitCode.NOT_FOUND,
        )
    return [by_name[n] for n in names]


def _line(chainlet: ChainletV1, log: LogV1, width: int) -> str:
    when = datetime.fromtimestamp(int(log.timestamp) / 1e9, tz=UTC)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    level = log.level.value if log.level else "-"
    return f"{stamp} {chainlet.name:<{width}} {log.replica or '-':<5} {level:<7} {log.message}"


def _record(deployment: ChainDeploymentV1, chainlet: ChainletV1, log: LogV1) -> dict[str, Any]:
    return {
        "deployment_id": deployment.id,
        "chainlet": chainlet.name,
        "chainlet_id": chainlet.id,
        **log.model_dump(mode="json"),
    }


@connected
def logs(
    s: Session,
    chain: ChainArg,
    environment: Annotated[
        str | None, typer.Option("--env", "-e", help="Environment (default production)")
    ] = None,
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="A deployment instead")
    ] = None,
    chainlet: Annotated[
        list[str] | None, typer.Option("--chainlet", "-c", help="Only this chainlet (repeat)")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    since: Annotated[str, typer.Option(help="How far back to start, e.g. 10m, 2h")] = "30m",
    limit: Annotated[int, typer.Option(min=1, max=_PAGE, help="Lines shown at first")] = 200,
    level: Annotated[
        LogLevelV1 | None, typer.Option(case_sensitive=False, help="Lowest level shown")
    ] = None,
    search: Annotated[str | None, typer.Option(help="Only lines matching this regex")] = None,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between polls with -f")] = 1.0,
) -> None:
    """Show a deployment's logs: the environment's current one unless --deployment."""
    # Following, Ctrl-C ends the command between requests, never inside one (cli/interrupt.py).
    with deferred_interrupt(enabled=follow) as stop:
        chain_id = s.chain_id(chain)
        target = _deployment(s, chain_id, environment, deployment)
        chainlets = _chosen(s, target, chainlet)
        width = max(len(c.name) for c in chainlets)
        start_ms = int((time.time() - parse_duration(since)) * 1000)
        filters: dict[str, Any] = {"min_level": level, "search_pattern": search}

        batch: list[tuple[int, ChainletV1, LogV1]] = []
        for c in chainlets:
            # Newest first, so that `limit` keeps the latest lines; shown oldest first below.
            page = s.client.deployments.logs(
                chain_id,
                target.id,
                c.id,
                start_epoch_millis=start_ms,
                direction="desc",
                limit=limit,
                **filters,
            )
            batch.extend((int(log.timestamp), c, log) for log in page.logs)
        batch.sort(key=lambda item: item[0])
        batch = batch[-limit:]

        if s.json and not follow:
            s.emit_json({"logs": [_record(target, c, log) for _, c, log in batch]})
            return

        def show(c: ChainletV1, log: LogV1) -> None:
            if s.json:
                typer.echo(json.dumps(_record(target, c, log)))
            else:
                typer.echo(_line(c, log, width))

        for _, c, log in batch:
            show(c, log)
        if not follow:
            return
        _follow(s, chain_id, target, chainlets, batch, start_ms, interval, filters, show, stop)


def _follow(
    s: Session,
    chain_id: str,
    target: ChainDeploymentV1,
    chainlets: list[ChainletV1],
    shown: list[tuple[int, ChainletV1, LogV1]],
    start_ms: int,
    interval: float,
    filters: dict[str, Any],
    show: Callable[[ChainletV1, LogV1], None],
    interrupted: Interrupt,
) -> None:
    """Polls for lines newer than those shown, until Ctrl-C."""
    seen = {(c.id, log.timestamp, log.replica, log.message) for _, c, log in shown}
    newest = {c.id: start_ms for c in chainlets}
    for ts, c, _ in shown:
        newest[c.id] = max(newest[c.id], ts // 1_000_000)
    while not interrupted.wait(interval):
        fresh: list[tuple[int, ChainletV1, LogV1]] = []
        for c in chainlets:
            try:
                page = s.client.deployments.logs(
                    chain_id,
                    target.id,
                    c.id,
                    start_epoch_millis=max(start_ms, newest[c.id] - _LOOKBACK_MS),
                    direction="asc",
                    limit=_PAGE,
                    **filters,
                )
            except RateLimited as exc:
                if interrupted.wait(exc.retry_after or interval):
                    return
                continue
            for log in page.logs:
                key = (c.id, log.timestamp, log.replica, log.message)
                if key not in seen:
                    seen.add(key)
                    fresh.append((int(log.timestamp), c, log))
                    newest[c.id] = max(newest[c.id], int(log.timestamp) // 1_000_000)
        for _, c, log in sorted(fresh, key=lambda item: item[0]):
            show(c, log)
        # Only lines still inside a look-back window can come again: forget the rest.
        horizon_ns = (min(newest.values()) - _LOOKBACK_MS) * 1_000_000
        seen = {key for key in seen if int(key[1]) >= horizon_ns}
