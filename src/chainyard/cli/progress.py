"""Progress of a promotion or a deployment while a command waits for it.

On a terminal it is a live view (spinner, elapsed time, each chainlet's status), redrawn in
place. Elsewhere (a pipe, a CI log) a live view would leave its frames behind, so there is one
line each time something changes instead. Both go to stderr; stdout stays for the result.
`quiet` (JSON output into a pipe) shows nothing, so that stderr carries only errors.
"""

from __future__ import annotations

import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from chainyard.cli import render
from chainyard.schemas import ChainDeploymentV1, ChainEnvironmentV1
from chainyard.sdk import Client


def _summary(deployment: ChainDeploymentV1) -> str:
    parts = " ".join(f"{c.name}={c.status.value}" for c in deployment.chainlets)
    return f"{deployment.id} {deployment.status.value}: {parts}"


class _View:
    """Shows what a wait sees: live on a terminal, one line per change elsewhere."""

    def __init__(self, console: Console, title: str, *, quiet: bool) -> None:
        self.console = console
        self.title = title
        self.quiet = quiet
        self.started = time.monotonic()
        self.live: Live | None = None
        self._last_line: str | None = None
        self._last_body: RenderableType | None = None

    def __enter__(self) -> _View:
        if self.quiet:
            return self
        if self.console.is_terminal:
            # Transient: the frames go away at the end, replaced by one line that says how it
            # ended (and, on failure, the last state seen); the result itself goes to stdout.
            self.live = Live(
                self._frame(Text("waiting for the server...")),
                console=self.console,
                refresh_per_second=8,
                transient=True,
            )
            self.live.__enter__()
        else:
            self.console.print(self.title, markup=False, highlight=False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self.live is None:
            return
        self.live.__exit__(None, None, None)
        elapsed = f"{time.monotonic() - self.started:.0f}s"
        if exc_type is None:
            self.console.print(f"[green]✓[/green] {self.title} ({elapsed})", highlight=False)
        else:
            self.console.print(f"[red]✗[/red] {self.title} ({elapsed})", highlight=False)
            if self._last_body is not None:
                self.console.print(self._last_body)

    def _frame(self, body: RenderableType) -> RenderableType:
        elapsed = time.monotonic() - self.started
        spinner = Spinner("dots", text=Text(f"{self.title} ({elapsed:.0f}s)"))
        return Group(spinner, body)

    def show(self, body: RenderableType, line: str) -> None:
        self._last_body = body
        if self.live is not None:
            self.live.update(self._frame(body))
        elif line != self._last_line and not self.quiet:
            self.console.print(f"  {line}", markup=False, highlight=False)
        self._last_line = line


def watch_promotion(
    client: Client,
    console: Console,
    chain_id: str,
    environment: str,
    *,
    deployment_id: str | None,
    timeout: float | None,
    poll_interval: float = 0.5,
    quiet: bool = False,
) -> ChainEnvironmentV1:
    """Waits until the promotion is done, showing the candidate's chainlets; the SDK's
    PromotionFailed / PromotionTimeout pass through to the caller."""
    title = f"promoting {deployment_id or 'the candidate'} into {environment}"
    with _View(console, title, quiet=quiet) as view:

        def update(env: ChainEnvironmentV1) -> None:
            candidate = env.candidate_deployment
            current = env.current_deployment
            if candidate is not None and candidate.id == (deployment_id or candidate.id):
                body: RenderableType = Group(
                    render.chainlets(candidate, title=f"deployment {candidate.id}"),
                    Text(f"{environment} still serves {current.id if current else 'nothing'}"),
                )
                view.show(body, _summary(candidate))
            elif current is not None:
                view.show(render.chainlets(current), f"current {_summary(current)}")

        env = client.environments.wait_until_promoted(
            chain_id,
            environment,
            deployment_id=deployment_id,
            timeout=timeout,
            poll_interval=poll_interval,
            on_update=update,
        )
    return env


def watch_deployment(
    client: Client,
    console: Console,
    chain_id: str,
    deployment_id: str,
    *,
    timeout: float | None,
    poll_interval: float = 0.5,
    quiet: bool = False,
) -> ChainDeploymentV1:
    """Waits until the deployment is ACTIVE, showing its chainlets; DeploymentFailed and
    WaitTimeout pass through."""
    with _View(console, f"deploying {deployment_id}", quiet=quiet) as view:
        return client.deployments.wait_until_active(
            chain_id,
            deployment_id,
            timeout=timeout,
            poll_interval=poll_interval,
            on_update=lambda d: view.show(render.chainlets(d), _summary(d)),
        )
