"""The pieces behind honouring image settings: the baseline packages, interpreter choice, and
the deploy-time check of a chainlet's settings."""

from __future__ import annotations

import pathlib
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from chainyard.chains import image_settings
from chainyard.config import parse_pythons
from chainyard.domain.errors import Invalid
from chainyard.interpreters import SERVER_VERSION, Interpreters
from chainyard.runtime.baseline import BASELINE
from chainyard.schemas import ChainletManifest
from chainyard.services import chainlet_image

REPO = pathlib.Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower().replace("_", "-")


def test_chainyard_depends_on_every_package_of_truss_serving_image() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ours = {_name(r) for r in project["dependencies"]}
    # uvicorn[standard] and friends: the extra does not change the name.
    assert {_name(r) for r in BASELINE} <= ours | {"uvicorn", "fastapi", "aiohttp"}
    assert {"uvicorn", "fastapi", "aiohttp", "prometheus-client"} <= ours


def test_interpreter_choice() -> None:
    interpreters = Interpreters()
    assert interpreters.choose(SERVER_VERSION, "x").executable is None
    older = interpreters.choose("3.1", "chainlet 'A': base")
    assert older.refusal is None and older.warning is not None
    assert "asks for Python 3.1;" in older.warning and "instead" in older.warning
    newer = interpreters.choose("3.99", "chainlet 'A': base")
    assert newer.refusal is not None and "3.99" in newer.refusal
    unknown = interpreters.choose(None, "chainlet 'A': base")
    assert unknown.warning is not None and "unknown" in unknown.warning
    ray = Interpreters(runtime="ray").choose("3.1", "chainlet 'A': base")
    assert ray.warning is not None and "Ray" in ray.warning


def test_a_configured_interpreter_is_used_when_it_can_host_replicas() -> None:
    configured = Interpreters({SERVER_VERSION: sys.executable})
    choice = configured.choose(SERVER_VERSION, "x")
    assert choice.executable == sys.executable and choice.sites
    broken = Interpreters({"3.1": "/nonexistent/python"}).choose("3.1", "x")
    assert broken.executable is None and broken.warning is not None


def test_parse_pythons() -> None:
    assert parse_pythons("3.10=/a, 3.12=/b") == {"3.10": "/a", "3.12": "/b"}
    assert parse_pythons(["3.10=/a"]) == {"3.10": "/a"}
    with pytest.raises(ValueError, match="VERSION=PATH"):
        parse_pythons(["/usr/bin/python3"])


def _check(**fields: object) -> tuple[dict[str, object], list[str]]:
    return chainlet_image.check(ChainletManifest(name="C", **fields), Interpreters())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"data_dir": "../outside"}, "DockerImage.data_dir"),
        ({"external_package_dirs": ["/abs"]}, "DockerImage.external_package_dirs"),
        ({"env_variables": {"BAD-NAME": "x"}}, "ChainletOptions.env_variables"),
        ({"apt_requirements": ["curl; rm -rf /"]}, "DockerImage.apt_requirements"),
        ({"enable_b10_tracing": True}, "ChainletOptions.enable_b10_tracing"),
        (
            {"external_data": [{"url": "https://h/x", "local_data_path": "../x"}]},
            "Assets.external_data",
        ),
    ],
)
def test_unsafe_settings_are_refused(fields: dict[str, object], where: str) -> None:
    with pytest.raises(Invalid) as raised:
        _check(**fields)
    assert raised.value.code == "UNSUPPORTED_CHAINLET_SETTING"
    assert raised.value.message.startswith(f"chainlet 'C': {where}")


def test_honoured_settings_are_kept() -> None:
    image, warnings = _check(
        requirements_file={
            "path": "deps/requirements.txt",
            "kind": "requirements.txt",
            "requirements": ["a"],
        },
        apt_requirements=["curl", "curl"],
        env_variables={"A": "1"},
        truss_server_version_override="0.9.1",
        metadata={"team": "search", "tags": [1, 2]},
    )
    assert image == {
        "requirements_file": {"dir": "deps", "requirements": ["a"]},
        "apt": ["curl"],
        "env": {"A": "1"},
        "metadata": {"team": "search", "tags": [1, 2]},
        "warnings": warnings,
    }
    assert len(warnings) == 1 and "truss_server_version_override 0.9.1" in warnings[0]


class _Path:
    """truss's AbsPath, as far as `chainyard push` uses it."""

    def __init__(self, path: pathlib.Path) -> None:
        self.abs_path = str(path)


def test_requirements_files_as_push_reads_them(tmp_path: pathlib.Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "requirements.txt").write_text("a==1  # pinned\n\n-r sub/more.txt\n./w/x.whl\n")
    (tmp_path / "sub" / "more.txt").write_text("# nested\nb\n--requirement=../requirements.txt\n")
    text = image_settings._requirements_file(_Path(tmp_path / "requirements.txt"), tmp_path)
    assert text == {
        "path": "requirements.txt",
        "kind": "requirements.txt",
        "requirements": ["a==1", "b", "./w/x.whl"],
    }
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["c>=2"]\n')
    project = image_settings._requirements_file(_Path(tmp_path / "pyproject.toml"), tmp_path)
    assert project == {"path": "pyproject.toml", "kind": "pyproject.toml", "requirements": ["c>=2"]}
    outside = image_settings._requirements_file(
        _Path(tmp_path / "requirements.txt"), tmp_path / "sub"
    )
    assert outside["path"] is None


def test_push_sends_every_setting_of_remote_config(tmp_path: pathlib.Path) -> None:
    """What `chainyard push` reads from a remote_config that sets every field: nothing is left
    behind on the client (the server honours or refuses each)."""
    import truss_chains as chains
    from truss.base import truss_config

    (tmp_path / "requirements.txt").write_text("a\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("x")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "m.py").write_text("")

    def here(name: str) -> object:
        return chains.public_types.AbsPath(str(tmp_path / name), "test", name)

    config = chains.RemoteConfig(
        docker_image=chains.DockerImage(
            base_image=chains.CustomImage(image="repo/python:3.10-slim"),
            pip_requirements=["b"],
            requirements_file=here("requirements.txt"),
            apt_requirements=["curl"],
            data_dir=here("data"),
            external_package_dirs=[here("lib")],
            truss_server_version_override="0.9.0",
        ),
        compute=chains.Compute(cpu_count=2, instance_type="1x2"),
        assets=chains.Assets(
            cached=[truss_config.ModelRepo(repo_id="o/m", use_volume=False)],
            secret_keys=["s"],
            external_data=[truss_config.ExternalDataItem(url="https://h/x", local_data_path="x")],
            weights=[truss_config.WeightsSource(source="hf://o/m", mount_location="/w")],
        ),
        options=chains.ChainletOptions(
            env_variables={"E": "1"}, metadata={"owner": "me"}, enable_b10_tracing=True
        ),
        build_commands=["echo"],
    )
    described = image_settings.describe(config, tmp_path)
    assert described["base_image"] == {
        "kind": "custom",
        "name": "repo/python:3.10-slim",
        "python_version": "3.10",
        "python_executable_path": None,
        "docker_auth": False,
    }
    assert described["requirements_file"]["requirements"] == ["a"]
    assert described["apt_requirements"] == ["curl"]
    assert described["data_dir"] == "data"
    assert described["external_package_dirs"] == ["lib"]
    assert described["truss_server_version_override"] == "0.9.0"
    assert described["env_variables"] == {"E": "1"}
    assert described["external_data"][0]["url"] == "https://h/x"
    assert described["cached"][0]["repo_id"] == "o/m"
    assert described["weights"][0]["source"] == "hf://o/m"
    assert described["build_commands"] == ["echo"]
    assert described["instance_type_id"] == "1x2"
    assert described["metadata"] == {"owner": "me"}
    assert described["enable_b10_tracing"] is True
    # The manifest model takes every one of them.
    ChainletManifest(name="C", **described)
    baseten = image_settings.describe(
        chains.RemoteConfig(docker_image=chains.DockerImage(base_image=chains.BasetenImage.PY39)),
        tmp_path,
    )
    assert baseten == {"base_image": {"kind": "baseten", "name": "py39", "python_version": "3.9"}}


def test_apt_packages_are_checked_with_dpkg() -> None:
    import asyncio

    from chainyard.runtime import apt

    assert asyncio.run(apt.missing(["coreutils", "chainyard-no-such-deb=1.0"])) == [
        "chainyard-no-such-deb=1.0"
    ]
    # Installed already: nothing for apt-get to do, even when installing is allowed.
    assert asyncio.run(apt.ensure(["coreutils"], install=True)) == [
        "apt packages installed on this host: coreutils"
    ]
    with pytest.raises(apt.AptError, match="not installed on this host: chainyard-no-such-deb"):
        asyncio.run(apt.ensure(["chainyard-no-such-deb"], install=False))


def test_a_custom_images_pull_settings_are_named_in_a_warning() -> None:
    image, warnings = _check(
        base_image={
            "kind": "custom",
            "name": "repo/python:3.11-slim",
            "python_version": "3.11",
            "python_executable_path": "/opt/py/bin/python",
            "docker_auth": True,
        }
    )
    unused = [w for w in warnings if "CustomImage" in w]
    assert len(unused) == 1
    assert "python_executable_path '/opt/py/bin/python' and docker_auth" in unused[0]
    assert image["warnings"] == warnings
