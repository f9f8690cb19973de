"""`chainyard init [DIR]`: scaffold a chain to start from, as `truss chains init` does.

The chain it writes is plain `truss_chains` code, as a Baseten user writes it, and it has two
chainlets rather than one, so that the first push already shows a real chain: an entrypoint
calling a dependency over the network. Its docstring and the command's output give the next
steps (run it locally, push a development deployment, call it).
"""

from __future__ import annotations

import keyword
import pathlib
import re
import shlex
import sys
from typing import Annotated, NoReturn

import typer

from chainyard.cli.config import DEFAULT_URL, ConfigError, resolve
from chainyard.cli.session import ExitCode, console, report
from chainyard.schemas.deploy import NAME_PATTERN

DEFAULT_FILE = "my_chain.py"
ENTRYPOINT = "Greet"
DEPENDENCY = "Shout"
# What the scaffolded chain answers for this body, in the next steps and the tests.
SAMPLE_BODY = '{"name": "world"}'
SAMPLE_ANSWER = "HELLO, WORLD!"

# truss_chains imports the chain file as a module named after the file: a name that shadows a
# module the chain (or chainyard, loading it) imports would break in confusing ways.
_SHADOWED = frozenset(sys.stdlib_module_names) | {
    "truss",
    "truss_chains",
    "chainyard",
    "pydantic",
    "fastapi",
    "httpx",
    "numpy",
}

# Placeholders are words no chain name, file name or URL can contain.
_TEMPLATE = '''\
"""The chain @CHAIN@, made by `chainyard init`: yours to edit.

Next steps, from this directory, with a chainyard server running (`chainyard serve`):

    # run the chain here, in one process
    python @FILE@
    # a development deployment that follows this file
    chainyard push --watch @FILE@

Then call it, with the chain_id that push prints and its API key (where the server
runs: `export CHAINYARD_API_KEY=$(cat .chainyard/initial-api-key)`):

    curl -s -H "Authorization: Api-Key $CHAINYARD_API_KEY" -d '@BODY@' \\
      @URL@/chains/CHAIN_ID/development/run_remote

Change what @DEP@ returns, save, and call again. Once it is ready, publish it into
production:

    chainyard push @FILE@ --promote --wait
"""

import truss_chains as chains


class @DEP@(chains.ChainletBase):
    """A chainlet with replicas of its own: the entrypoint calls it over HTTP."""

    async def run_remote(self, text: str) -> str:
        return f"{text.upper()}!"


@chains.mark_entrypoint("@CHAIN@")
class @ENTRY@(chains.ChainletBase):
    """The entrypoint, the chainlet that callers reach: the keys of a request's JSON body
    are the arguments of its `run_remote`."""

    def __init__(self, shout: @DEP@ = chains.depends(@DEP@)) -> None:
        self._shout = shout

    async def run_remote(self, name: str) -> str:
        return await self._shout.run_remote(f"hello, {name}")


if __name__ == "__main__":
    import asyncio

    with chains.run_local():
        print(asyncio.run(@ENTRY@().run_remote("world")))
'''


def init(
    directory: Annotated[
        pathlib.Path | None,
        typer.Argument(
            help="Where to create the chain: an empty or new directory (default: this one)",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help=f"The chain's Python file (default: {DEFAULT_FILE}; asked for on a terminal)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a chain to start from: an entrypoint that calls a second chainlet."""
    target = directory if directory is not None else pathlib.Path.cwd()
    _check_directory(target)
    if name is None:
        # Only a person at a terminal is asked; a script or a pipe gets the default, never a hang.
        if _interactive():
            name = typer.prompt("Python file name for the chain", default=DEFAULT_FILE, err=True)
        else:
            name = DEFAULT_FILE
    filename = _file_name(name)
    chain_name = chain_name_for(target, filename)
    url = _server_url()
    source = render(filename=filename, chain_name=chain_name, url=url)
    path = target / filename
    try:
        target.mkdir(parents=True, exist_ok=True)
        # "x": never overwrite a file that appeared since the directory was found empty.
        with path.open("x", encoding="utf-8") as handle:
            handle.write(source)
    except OSError as exc:
        _fail(f"cannot create {path}: {exc}", ExitCode.ERROR)
    shown = path if directory is not None else pathlib.Path(filename)
    typer.echo(next_steps(shown, chain_name=chain_name, url=url))


def render(*, filename: str, chain_name: str, url: str) -> str:
    """The scaffolded chain's source."""
    values = {
        "@CHAIN@": chain_name,
        "@ENTRY@": ENTRYPOINT,
        "@DEP@": DEPENDENCY,
        "@FILE@": filename,
        "@URL@": url,
        "@BODY@": SAMPLE_BODY,
    }
    return re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)], _TEMPLATE)


def next_steps(path: pathlib.Path, *, chain_name: str, url: str) -> str:
    file = shlex.quote(str(path))
    return "\n".join(
        [
            f"created {path}: the chain {chain_name}, whose entrypoint {ENTRYPOINT} calls "
            f"{DEPENDENCY}",
            "",
            "Next steps, with a chainyard server running (`chainyard serve`):",
            "",
            "  # run the chain here, in one process",
            f"  python {file}",
            "  # a development deployment that follows the file",
            f"  chainyard push --watch {file}",
            "  # call it, with the chain_id that push prints",
            f"  curl -s -H \"Authorization: Api-Key $CHAINYARD_API_KEY\" -d '{SAMPLE_BODY}' \\",
            f"    {url}/chains/CHAIN_ID/development/run_remote",
            f"  # edit {DEPENDENCY}.run_remote, save, call again; once it is ready, publish it:",
            f"  chainyard push {file} --promote --wait",
        ]
    )


def chain_name_for(directory: pathlib.Path, filename: str) -> str:
    """The chain is named after its directory (a project's name), so that two scaffolded chains
    do not push into one chain; else after its file."""
    pattern = re.compile(NAME_PATTERN)
    for candidate in (directory.resolve().name, filename.removesuffix(".py")):
        cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", candidate).strip("-_.")[:100]
        if pattern.fullmatch(cleaned):
            return cleaned
    return "my-chain"


def _check_directory(target: pathlib.Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        _fail(f"{target} is not a directory: give an empty or new directory")
    try:
        empty = next(target.iterdir(), None) is None
    except OSError as exc:
        _fail(f"cannot read {target}: {exc}", ExitCode.ERROR)
    if not empty:
        _fail(f"{target} is not empty: give an empty or new directory")


def _file_name(name: str) -> str:
    filename = name.strip() or DEFAULT_FILE
    if pathlib.PurePath(filename).name != filename or "\\" in filename:
        _fail(f"--name takes a file name, not a path (got {name!r}); DIR is where it goes")
    if not filename.endswith(".py"):
        filename += ".py"
    stem = filename.removesuffix(".py")
    if not stem.isidentifier() or keyword.iskeyword(stem):
        _fail(
            f"{filename!r}: the chain is imported as a module named after its file, so the "
            "name must be a Python identifier followed by .py (e.g. my_chain.py)"
        )
    if stem in _SHADOWED:
        _fail(f"{filename!r} would shadow the module {stem!r} that chains import: pick another")
    return filename


def _interactive() -> bool:
    return sys.stdin.isatty()


def _server_url() -> str:
    """The server the next steps call: the one the other commands would use."""
    try:
        return resolve().url
    except ConfigError:
        return DEFAULT_URL


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    report(console(stderr=True), message, code=None, status=None, as_json=False)
    raise typer.Exit(int(code))
