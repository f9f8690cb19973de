"""Chainlet environments: nothing to build when the server's packages satisfy the requirements,
one build per distinct requirement set, and pip's error when a build fails."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys

import pytest

from chainyard.runtime import python_envs


def test_satisfied_here_reads_installed_versions() -> None:
    assert python_envs.satisfied_here([])
    assert python_envs.satisfied_here(["pydantic>=2", "fastapi"])
    assert not python_envs.satisfied_here(["pydantic<1"])
    assert not python_envs.satisfied_here(["chainyard-no-such-package"])
    assert not python_envs.satisfied_here(["not a requirement !!"])


def test_hash_ignores_order_blanks_and_duplicates() -> None:
    assert python_envs.requirements_hash(["b", "a", ""]) == python_envs.requirements_hash(
        ["a", "b", "a"]
    )
    assert python_envs.requirements_hash(["a"]) != python_envs.requirements_hash(["a==1"])


def test_satisfied_requirements_use_the_server_interpreter(tmp_path: pathlib.Path) -> None:
    python, log = asyncio.run(python_envs.ensure_env(tmp_path, ["pydantic>=2"]))
    assert python == sys.executable
    assert "nothing to build" in log[0]
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_missing_requirements_build_once_and_see_the_server_packages(
    tmp_path: pathlib.Path,
) -> None:
    python, log = asyncio.run(python_envs.ensure_env(tmp_path, ["six==1.16.0"]))
    assert python != sys.executable
    assert any("six" in line for line in log)
    check = subprocess.run(
        [python, "-c", "import six, pydantic, chainyard; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "1.16.0"
    again, log_again = asyncio.run(python_envs.ensure_env(tmp_path, ["six==1.16.0"]))
    assert again == python
    assert "reusing" in log_again[0]


def test_a_failed_build_carries_pips_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(python_envs.EnvBuildError) as failure:
        asyncio.run(python_envs.ensure_env(tmp_path, ["chainyard-no-such-package-xyz==1.0"]))
    assert "chainyard-no-such-package-xyz" in str(failure.value)
    assert failure.value.log
    assert not any(p.is_dir() for p in tmp_path.iterdir())
