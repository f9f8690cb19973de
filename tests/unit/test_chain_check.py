"""The watcher's import check: a fresh fork per check imports the chain as saved and answers
with push's manifest, or with the error as a person fixing the chain wants it."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from chainyard.chains.discovery import ChainDiscoveryError
from chainyard.cli.chain_check import ImportChecker, describe_error

REPO = pathlib.Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.slow  # the checker's child imports truss_chains


@pytest.fixture
def chain(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "chain.py"
    shutil.copy(HELLO, path)
    return path


def test_a_good_chain_then_edits_each_seen_afresh(chain: pathlib.Path) -> None:
    checker = ImportChecker(chain, None, "hello")
    try:
        first = checker.check()
        assert first.error is None, first.error
        assert first.manifest is not None
        assert first.manifest["chain_name"] == "hello"
        assert first.manifest["entrypoint"] == "HelloWorld"
        assert first.manifest["source_file"] == "chain.py"
        assert sorted(c["name"] for c in first.manifest["chainlets"]) == ["HelloWorld", "RandInt"]

        # A helper module, imported by the chain: a cached import would hide its next edit.
        (chain.parent / "helper.py").write_text("print('imported helper')\nVALUE = 1\n")
        source = chain.read_text().replace(
            "import truss_chains as chains\n",
            "import truss_chains as chains\n\nimport helper\n",
        )
        chain.write_text(source)
        child = checker._child
        second = checker.check()
        assert checker._child is child, "one child forks every check: truss is imported once"
        assert second.error is None, second.error
        assert "imported helper" in second.output  # the chain's prints, apart from the answer

        (chain.parent / "helper.py").write_text("VALUE = (\n")
        broken = checker.check()
        assert broken.manifest is None
        assert broken.error is not None
        assert "helper.py" in broken.error and "SyntaxError" in broken.error
        assert "chain.py" in broken.error  # the chain's frame that imported it
        assert "truss_chains" not in broken.error  # no frames of the framework
    finally:
        checker.close()


def test_an_import_error_and_a_syntax_error(chain: pathlib.Path) -> None:
    checker = ImportChecker(chain, None, None)
    try:
        chain.write_text("import truss_chains as chains\nimport no_such_module_here\n")
        missing = checker.check()
        assert missing.manifest is None and missing.error is not None
        assert "ModuleNotFoundError: No module named 'no_such_module_here'" in missing.error
        assert 'chain.py", line 2' in missing.error

        chain.write_text("def broken(:\n    pass\n")
        syntax = checker.check()
        assert syntax.manifest is None and syntax.error is not None
        assert "SyntaxError" in syntax.error and "def broken(:" in syntax.error
    finally:
        checker.close()


def test_describe_error_keeps_the_message_of_a_framework_error(tmp_path: pathlib.Path) -> None:
    try:
        raise ValueError("a chainlet may not do that")
    except ValueError as inner:
        outer = ChainDiscoveryError(f"cannot load chain from x.py: {inner}")
        outer.__cause__ = inner
    assert (
        describe_error(outer, tmp_path) == "cannot load chain from x.py: a chainlet may not do that"
    )
    assert describe_error(ChainDiscoveryError("no chainlet"), tmp_path) == "no chainlet"
