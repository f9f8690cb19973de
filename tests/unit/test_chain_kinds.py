"""Which truss_chains classes `chainyard push` takes (chains/kinds.py): ChainletBase chains,
WebSocket entrypoints and ModelBase models; what it refuses, with a message that says why.
In process, with chain files written for each case (each import of truss costs seconds)."""

from __future__ import annotations

import pathlib

import pytest

from chainyard.chains.discovery import ChainDiscoveryError, discover

# truss_chains, imported in process by discovery, trips deprecations of its own.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HEADER = "import truss_chains as chains\nfrom truss.base import truss_config\n\n"

MODEL = """
class Square(chains.ModelBase):
    def predict(self, x: int) -> int:
        return x * x
"""

WEBSOCKET = """
class Echo(chains.ChainletBase):
    async def run_remote(self, websocket: chains.WebSocketProtocol) -> None:
        await websocket.send_text(await websocket.receive_text())
"""


def write(tmp_path: pathlib.Path, name: str, body: str) -> pathlib.Path:
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + body)
    return path


def refused(path: pathlib.Path, entrypoint: str | None = None) -> str:
    with pytest.raises(ChainDiscoveryError) as caught:
        discover(path, entrypoint)
    return str(caught.value)


def test_a_model_alone_and_a_model_dependency(tmp_path: pathlib.Path) -> None:
    alone = discover(write(tmp_path, "kinds_model_alone", MODEL))
    assert alone.entrypoint == "Square" and alone.chain_name == "Square"
    assert [c.name for c in alone.chainlets] == ["Square"]

    caller = MODEL + (
        "\n\n@chains.mark_entrypoint\n"
        "class Caller(chains.ChainletBase):\n"
        "    def __init__(self, square: Square = chains.depends(Square)) -> None:\n"
        "        self._square = square\n\n"
        "    def run_remote(self, x: int) -> int:\n"
        "        return self._square.predict(x=x)\n"
    )
    chain = discover(write(tmp_path, "kinds_model_dependency", caller))
    # The file's ChainletBase classes decide the entrypoint; the model is a dependency.
    assert chain.entrypoint == "Caller"
    assert {c.name: c.dependencies for c in chain.chainlets} == {"Square": [], "Caller": ["Square"]}


def test_several_models_need_a_name(tmp_path: pathlib.Path) -> None:
    body = MODEL + MODEL.replace("Square", "Cube").replace("x * x", "x * x * x")
    path = write(tmp_path, "kinds_two_models", body)
    message = refused(path)
    assert "several `chains.ModelBase` classes ['Cube', 'Square']" in message
    assert discover(path, "Cube").entrypoint == "Cube"


def test_a_websocket_entrypoint_is_taken_and_a_websocket_dependency_is_not(
    tmp_path: pathlib.Path,
) -> None:
    assert discover(write(tmp_path, "kinds_ws", WEBSOCKET)).entrypoint == "Echo"
    body = WEBSOCKET + (
        "\n\n@chains.mark_entrypoint\n"
        "class Front(chains.ChainletBase):\n"
        "    def __init__(self, echo: Echo = chains.depends(Echo)) -> None:\n"
        "        self._echo = echo\n\n"
        "    async def run_remote(self, x: int) -> int:\n"
        "        return x\n"
    )
    message = refused(write(tmp_path, "kinds_ws_dependency", body))
    assert "websockets can only be used in the entrypoint" in message


def test_grpc_transport_is_refused(tmp_path: pathlib.Path) -> None:
    body = (
        "class Grpc(chains.ChainletBase):\n"
        "    remote_config = chains.RemoteConfig(\n"
        "        options=chains.ChainletOptions(transport=truss_config.GRPCOptions())\n"
        "    )\n\n"
        "    async def run_remote(self, x: int) -> int:\n"
        "        return x\n"
    )
    message = refused(write(tmp_path, "kinds_grpc", body))
    assert "`Grpc`: options.transport GRPCOptions is not supported" in message


def test_truss_chainlets_are_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "legacy_truss").mkdir()
    (tmp_path / "legacy_truss" / "config.yaml").write_text("model_name: legacy\n")
    body = (
        "from truss_chains.remote_chainlet.truss_chainlet import TrussHandle\n\n\n"
        "class Legacy(chains.TrussChainlet):\n"
        '    truss_dir = "legacy_truss"\n\n\n'
        "@chains.mark_entrypoint\n"
        "class Front(chains.ChainletBase):\n"
        "    def __init__(self, legacy: TrussHandle = chains.depends(Legacy)) -> None:\n"
        "        self._legacy = legacy\n\n"
        "    async def run_remote(self, x: int) -> int:\n"
        "        return x\n"
    )
    message = refused(write(tmp_path, "kinds_truss_chainlet", body))
    assert "`Legacy` is a chains.TrussChainlet" in message


def test_engine_builder_chainlets_are_refused(tmp_path: pathlib.Path) -> None:
    body = (
        "from truss.base import trt_llm_config as trt\n\n\n"
        "class Llm(chains.EngineBuilderLLMChainlet):\n"
        '    remote_config = chains.RemoteConfig(compute=chains.Compute(gpu="H100"))\n'
        "    engine_builder_config = trt.TRTLLMConfiguration(\n"
        "        build=trt.TrussTRTLLMBuildConfiguration(\n"
        "            base_model=trt.TrussTRTLLMModel.LLAMA,\n"
        "            checkpoint_repository=trt.CheckpointRepository(\n"
        '                source=trt.CheckpointSource.HF, repo="example/llm"\n'
        "            ),\n"
        "        )\n"
        "    )\n\n\n"
        "@chains.mark_entrypoint\n"
        "class Front(chains.ChainletBase):\n"
        "    def __init__(self, llm: Llm = chains.depends(Llm)) -> None:\n"
        "        self._llm = llm\n\n"
        "    async def run_remote(self, prompt: str) -> str:\n"
        "        return prompt\n"
    )
    message = refused(write(tmp_path, "kinds_engine_builder", body))
    assert "`Llm` is a chains.EngineBuilderLLMChainlet" in message
