"""The local runtime's sandbox (runtime/sandbox.py) and the rule for servers without one
(protections.py): what a sandboxed process sees, and when a server refuses to start."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from chainyard import protections
from chainyard.runtime import sandbox
from chainyard.runtime.factory import UnknownRuntime, make_runtime
from chainyard.server import create_app
from chainyard.services import api_keys
from tests.e2e.conftest import CHAINYARD, REPO, LiveServer, _free_port
from tests.support.server import fast_config

HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.skipif(
    sandbox.problem() is not None, reason=f"no sandbox here: {sandbox.problem()}"
)

_LOOK = textwrap.dedent(
    """
    import json, os, pathlib, sys
    data, own, mine = (pathlib.Path(p) for p in sys.argv[1:4])
    seen = {}
    seen["data_dir"] = sorted(p.name for p in data.iterdir())
    seen["secret_key"] = (data / "secret.key").exists()
    seen["other_source"] = (data / "sources" / "other").exists()
    seen["own_source"] = (own / "chain.py").read_text()
    try:
        (own / "x").write_text("x")
        seen["own_source_writable"] = True
    except OSError:
        seen["own_source_writable"] = False
    (mine / "note").write_text("mine")
    seen["scratch_writable"] = (mine / "note").read_text() == "mine"
    seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    try:
        os.kill(int(sys.argv[4]), 0)
        seen["parent_signalable"] = True
    except OSError:
        seen["parent_signalable"] = False
    seen["outside"] = os.path.exists(sys.argv[5])
    seen["home_dir"] = os.path.exists(os.path.expanduser("~root/.cache"))
    print(json.dumps(seen))
    """
)


def test_a_sandboxed_process_sees_only_its_own_part_of_the_data_dir(
    tmp_path: pathlib.Path,
) -> None:
    data = tmp_path / "data"
    own = data / "sources" / "mine"
    own.mkdir(parents=True)
    (own / "chain.py").write_text("# the deployment's own source\n")
    (data / "sources" / "other").mkdir()
    (data / "sources" / "other" / "chain.py").write_text("# another workspace's\n")
    (data / "secret.key").write_text("not for chainlets")
    (data / "chainyard.db").write_text("not for chainlets")
    scratch = data / "scratch" / "dep1"
    (tmp_path / "outside.txt").write_text("the test's own tmp")
    layout = sandbox.Layout(data_dir=data, read_only=(own,), writable=(scratch,), workdir=own)
    argv = [sys.executable, "-c", _LOOK, str(data), str(own), str(scratch), str(os.getpid())]
    argv.append(str(tmp_path / "outside.txt"))
    done = subprocess.run(
        sandbox.command(argv, layout), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # Of the data dir, only the deployment's own parts exist in there.
    assert seen["data_dir"] == ["scratch", "sources"]
    assert seen["secret_key"] is False
    assert seen["other_source"] is False
    assert seen["own_source"] == "# the deployment's own source\n"
    assert seen["own_source_writable"] is False
    assert seen["scratch_writable"] is True
    assert (scratch / "note").read_text() == "mine"
    # Its own PID namespace: none of the machine's processes, so none to signal.
    assert os.getpid() not in seen["pids"] and max(seen["pids"]) < 10
    assert seen["parent_signalable"] is False
    assert seen["outside"] is False  # /tmp is its own
    assert seen["home_dir"] is False


def _two_workspaces(data_dir: pathlib.Path, **overrides: object) -> object:
    config = fast_config(runtime="simulated", data_dir=data_dir)
    app = create_app(config)
    with app.state.core.db.write() as session:
        api_keys.ensure_workspace(session, "team-b")
    return fast_config(runtime="local", data_dir=data_dir, **overrides)


def test_an_unsandboxed_server_refuses_several_workspaces(tmp_path: pathlib.Path) -> None:
    config = _two_workspaces(tmp_path / "data", sandbox="off")
    with pytest.raises(protections.SharedUnsandboxed, match="--allow-unsandboxed"):
        create_app(config)  # type: ignore[arg-type]


def test_the_operator_may_opt_out_and_is_warned(tmp_path: pathlib.Path) -> None:
    config = _two_workspaces(tmp_path / "data", sandbox="off", allow_unsandboxed=True)
    app = create_app(config)  # type: ignore[arg-type]
    assert "WARNING: replicas run without a sandbox (--sandbox off)" in (
        app.state.protections_banner
    )
    assert "--allow-unsandboxed is set" in app.state.protections_banner


def test_a_sandboxed_server_serves_several_workspaces(tmp_path: pathlib.Path) -> None:
    config = _two_workspaces(tmp_path / "data", sandbox="required")
    app = create_app(config)  # type: ignore[arg-type]
    assert "replica_sandbox on" in app.state.protections_banner
    assert "WARNING" not in app.state.protections_banner


def test_a_required_sandbox_is_refused_where_there_is_none(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UnknownRuntime, match="one trust domain"):
        make_runtime(fast_config(runtime="ray", sandbox="required", data_dir=tmp_path))
    with pytest.raises(ValueError, match="auto, required, off"):
        make_runtime(fast_config(runtime="local", sandbox="sometimes", data_dir=tmp_path))


def test_an_unsandboxed_server_builds_one_workspace_only(tmp_path: pathlib.Path) -> None:
    """A workspace created while an unsandboxed server runs gets no chainlet code run: its
    deployment fails at build, saying why; the first workspace's chains run."""
    server = LiveServer(
        data_dir=tmp_path / "data",
        port=_free_port(),
        log=tmp_path / "server.log",
        env={"CHAINYARD_SANDBOX": "off"},
    )
    server.start()
    try:
        assert "WARNING: replicas run without a sandbox" in server.log.read_text()
        first = server.push(HELLO, "--wait")
        assert first.returncode == 0, first.stderr
        admin = ["admin", "create-key", "--workspace", "team-b"]
        created = subprocess.run(
            [*CHAINYARD, *admin, "--data-dir", str(server.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        other_key = created.stdout.strip().splitlines()[-1]
        env = {**os.environ, "CHAINYARD_URL": server.url, "CHAINYARD_API_KEY": other_key}
        second = subprocess.run(
            [*CHAINYARD, "push", str(HELLO), "--wait"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert second.returncode != 0
        assert "serves one workspace only" in second.stdout + second.stderr
    finally:
        server.stop()
    # And at the next start, with two workspaces in the store, it refuses to start at all.
    with pytest.raises(RuntimeError, match="--allow-unsandboxed"):
        server.start()
