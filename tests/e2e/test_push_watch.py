"""`chainyard push --watch` as a user runs it, on a real server (docs/development.md): the
development deployment answers at `/development/run_remote`; after a save the next call answers
with the new code, and the watch output says what was patched; a broken save shows its error and
the last good code keeps serving; a changed requirement rebuilds; an added chainlet is refused.
One server on the local runtime; the watcher is a process of its own, stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import CHAINYARD, KEY, LiveServer, _free_port, wait_for

pytestmark = pytest.mark.slow

CHAIN = """
import truss_chains as chains


class Shout(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        docker_image=chains.DockerImage(pip_requirements={requirements})
    )

    async def run_remote(self, text: str) -> str:
        return text.upper() + "{suffix}"


@chains.mark_entrypoint("watched")
class Greet(chains.ChainletBase):
    def __init__(self, shout: Shout = chains.depends(Shout)) -> None:
        self._shout = shout

    async def run_remote(self, name: str) -> str:
        return await self._shout.run_remote("hello, " + name)
"""
WHISPER = """

class Whisper(chains.ChainletBase):
    async def run_remote(self, text: str) -> str:
        return text.lower()
"""


def chain_text(suffix: str, requirements: list[str] | None = None) -> str:
    return CHAIN.format(suffix=suffix, requirements=json.dumps(requirements or []))


def save(path: pathlib.Path, text: str) -> None:
    """As an editor saves: the whole file replaced at once."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("watch")
    live = LiveServer(data_dir=root / "data", port=_free_port(), log=root / "server.log")
    live.start()
    yield live
    live.stop()


class Watcher:
    def __init__(self, server: LiveServer, chain_file: pathlib.Path, folder: pathlib.Path) -> None:
        self.out = folder / "watch.out"
        self.err = folder / "watch.err"
        env = {**os.environ, "CHAINYARD_URL": server.url, "CHAINYARD_API_KEY": KEY}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [*CHAINYARD, "push", str(chain_file), "--watch"],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                # As from a terminal: a suite run as a background job would hand it SIGINT
                # ignored, and Ctrl-C is how the test ends it.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def errors(self) -> str:
        return self.err.read_text(errors="replace")

    def lines(self, start: str) -> list[str]:
        return [line for line in self.output().splitlines() if line.startswith(start)]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


def test_push_watch(server: LiveServer, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "chain"
    folder.mkdir()
    chain_file = folder / "watched.py"
    chain_file.write_text(chain_text("!"))
    watcher = Watcher(server, chain_file, tmp_path)
    try:
        wait_for(
            lambda: "watching" in watcher.errors() or watcher.process.poll() is not None,
            timeout=300,
            what="the development deployment, then the watch",
        )
        assert watcher.process.poll() is None, watcher.errors()[-3000:]
        pushed = json.loads(watcher.output().splitlines()[0])
        assert pushed["status"] == "ACTIVE"
        url = f"{server.url}/chains/{pushed['chain_id']}/development/run_remote"
        client = httpx.Client(headers={"Authorization": f"Api-Key {KEY}"}, timeout=60)

        def call() -> str:
            got = client.post(url, json={"name": "world"})
            assert got.status_code == 200, got.text
            result: str = got.json()
            return result

        assert call() == "HELLO, WORLD!"

        # A code change: the watch says what it patched, and the next call has the new code.
        save(chain_file, chain_text("!!!"))
        wait_for(lambda: watcher.lines("✓ patched"), timeout=120, what="the patch")
        assert call() == "HELLO, WORLD!!!"
        patched = watcher.lines("✓ patched")[0]
        assert "Shout" in patched and "Greet" in patched and "watched.py" in patched

        # A broken save: its error in the watch output, the last good code serving.
        save(chain_file, chain_text("?") + "\ndef broken(:\n")
        wait_for(lambda: watcher.lines("✗ failed"), timeout=120, what="the failed patch")
        assert "SyntaxError" in watcher.errors()
        assert "SyntaxError" in watcher.lines("✗ failed")[0]
        assert call() == "HELLO, WORLD!!!"

        # A changed requirement: rebuilt, then switched.
        save(chain_file, chain_text(" (rebuilt)", ["msgpack"]))
        wait_for(lambda: len(watcher.lines("✓ patched")) == 2, timeout=300, what="the rebuild")
        assert "(requirements)" in watcher.lines("✓ patched")[1]
        assert call() == "HELLO, WORLD (rebuilt)"

        # Another chainlet: refused, with what differs; nothing changes.
        added = chain_text(" (more)", ["msgpack"]).replace(
            "shout: Shout = chains.depends(Shout)",
            "shout: Shout = chains.depends(Shout), whisper: Whisper = chains.depends(Whisper)",
        )
        save(chain_file, added.replace("\n\nclass Shout", WHISPER + "\n\nclass Shout", 1))
        wait_for(lambda: watcher.lines("✗ refused"), timeout=120, what="the refusal")
        assert "Whisper" in watcher.lines("✗ refused")[0]
        assert call() == "HELLO, WORLD (rebuilt)"
        client.close()
    finally:
        code = watcher.stop()
    assert code == 0, watcher.errors()[-3000:]
