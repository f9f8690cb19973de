"""What every API command shares: its connection options, a client, output, and exit codes.

`@connected` gives a command the options --url, --api-key, --profile and --output, opens a
`Session` with the SDK client for it, and turns the SDK's errors into a message and an exit code,
so each command is only its own logic and every command behaves the same.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from chainyard.cli.config import ConfigError, OutputFormat, Settings, resolve
from chainyard.schemas import ChainV1
from chainyard.sdk import (
    ChainyardAPIError,
    ChainyardError,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    WaitError,
)


class ExitCode(enum.IntEnum):
    """Documented in docs/cli.md; scripts rely on them."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    AUTH = 5
    WAIT_FAILED = 6
    UNREACHABLE = 7


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, NotFound):
        return ExitCode.NOT_FOUND
    if isinstance(error, Conflict):
        return ExitCode.CONFLICT
    if isinstance(error, Unauthorized | Forbidden):
        return ExitCode.AUTH
    if isinstance(error, Invalid | PayloadTooLarge | ConfigError | ValueError):
        return ExitCode.USAGE
    if isinstance(error, WaitError):
        return ExitCode.WAIT_FAILED
    if isinstance(error, ConnectionFailed):
        return ExitCode.UNREACHABLE
    return ExitCode.ERROR


class Session:
    """One command's settings, client and consoles. Results go to stdout; progress, notes and
    errors to stderr, so that `--output json` output can be piped as it is."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out = console()
        self.err = console(stderr=True)
        self._client: Client | None = None

    @property
    def json(self) -> bool:
        return self.settings.output is OutputFormat.json

    @property
    def quiet_progress(self) -> bool:
        """JSON output with stderr not on a terminal: a script is reading, show no progress."""
        return self.json and not self.err.is_terminal

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.settings.url, self.settings.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def emit_json(self, value: Any) -> None:
        typer.echo(json.dumps(to_jsonable(value), indent=2))

    def note(self, message: str) -> None:
        """A line for people, on stderr; silent in JSON mode so scripts see only data."""
        if not self.json:
            self.err.print(message)

    def fail(self, message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
        report(self.err, message, code=None, status=None, as_json=self.json)
        raise typer.Exit(int(code))

    def chain(self, ref: str) -> ChainV1:
        """A chain by id, or else by name (ids are tried first: they are what the API uses)."""
        try:
            return self.client.chains.get(ref)
        except NotFound:
            for chain in self.client.chains.iter():
                if chain.name == ref:
                    return chain
            raise

    def chain_id(self, ref: str) -> str:
        return self.chain(ref).id


def console(*, stderr: bool = False) -> Console:
    result = Console(stderr=stderr, highlight=False)
    if not result.is_terminal:
        # Piped tables and messages keep their lines rather than fold at the default 80 columns.
        result.width = 200
    return result


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def report(
    err: Console, message: str, *, code: str | None, status: int | None, as_json: bool
) -> None:
    if as_json:
        body: dict[str, Any] = {"error": message}
        if code:
            body["code"] = code
        if status:
            body["status"] = status
        print(json.dumps(body), file=sys.stderr)
    else:
        # Messages quote user input and server text: brackets in them are not markup.
        err.print(f"[red]error:[/red] {escape(message)}", highlight=False)


def _report_error(as_json: bool, error: BaseException) -> None:
    err = console(stderr=True)
    if isinstance(error, ChainyardAPIError):
        report(err, error.message, code=error.code, status=error.status, as_json=as_json)
    elif isinstance(error, ChainyardError):
        report(err, error.message, code=type(error).__name__, status=None, as_json=as_json)
    else:
        report(err, str(error), code=None, status=None, as_json=as_json)


@contextlib.contextmanager
def failures_to_exit_codes(as_json: bool) -> Iterator[None]:
    """SDK errors, bad configuration and bad input become a message and an exit code."""
    try:
        yield
    except (ChainyardError, ConfigError, ValueError) as exc:
        _report_error(as_json, exc)
        raise typer.Exit(int(exit_code_for(exc))) from None


Url = Annotated[
    str | None,
    typer.Option("--url", help="Server URL (env CHAINYARD_URL)", show_default=False),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", help="API key (env CHAINYARD_API_KEY)", show_default=False),
]
Profile = Annotated[
    str | None,
    typer.Option("--profile", help="Profile of ~/.chainyard.toml to use", show_default=False),
]
Output = Annotated[
    OutputFormat | None,
    typer.Option("--output", "-o", help="table (default) or json", show_default=False),
]

_COMMON = (("url", Url), ("api_key", ApiKey), ("profile", Profile), ("output", Output))


def connected(fn: Callable[..., None]) -> Callable[..., None]:
    """Makes `fn(session, ...)` a command with the common connection and output options.

    Typer reads a command's options from its signature, so the wrapper presents the command's
    own parameters (without the session) followed by the common ones.
    """
    signature = inspect.signature(fn, eval_str=True)
    own = list(signature.parameters.values())[1:]
    common = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in _COMMON
    ]

    @functools.wraps(fn)
    def command(
        *args: Any,
        url: str | None = None,
        api_key: str | None = None,
        profile: str | None = None,
        output: OutputFormat | None = None,
        **kwargs: Any,
    ) -> None:
        with failures_to_exit_codes(output is OutputFormat.json):
            settings = resolve(url=url, api_key=api_key, profile=profile, output=output)
        session = Session(settings)
        try:
            with failures_to_exit_codes(session.json):
                fn(session, *args, **kwargs)
        finally:
            session.close()

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + common
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return command
