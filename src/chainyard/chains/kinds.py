"""The kinds of truss_chains classes a chain file may hold, and which of them chainyard serves.

Part of the truss_compat layer (it reads truss_chains' private API, at the pinned truss version):

- `chains.ChainletBase`: served (`run_remote`; JSON, streaming, or a WebSocket endpoint).
- `chains.ModelBase`: a truss model written with truss_chains (`predict`, no dependencies). Pushed
  on its own it is served as a chain of one, as Baseten deploys `truss push model.py`; as the
  dependency of a chainlet it is served like any chainlet, its stub's method named `predict`.
- `chains.EngineBuilderLLMChainlet` and `chains.TrussChainlet`: refused. Baseten serves them from
  its own images (the TensorRT-LLM engine builder, the truss server around an existing Truss
  directory), which chainyard does not have.
"""

from __future__ import annotations

import pathlib
from typing import Any


class UnservableChainlet(Exception):
    """A chainlet chainyard cannot serve; the message says which and why."""


def importer() -> Any:
    """An importer like truss_chains' own (ChainletImporter) that also takes a file whose only
    classes are `chains.ModelBase` models, as `truss push model.py` does (ModelImporter).

    With a named target, any chainlet or model class is taken. Without one: the file's
    ChainletBase classes decide, as for truss (the marked entrypoint, or the only one); a file
    with none takes its one ModelBase class.
    """
    from truss_chains import framework, private_types, utils

    abstract = (framework.ChainletBase, framework.ModelBase)

    class ChainOrModelImporter(framework.ChainletImporter):  # type: ignore[misc]
        @classmethod
        def _target_cls_type(cls) -> type[Any]:
            abc_chainlet: type[Any] = private_types.ABCChainlet
            return abc_chainlet

        @classmethod
        def _get_chainlets(cls, symbols: Any) -> tuple[set[Any], set[Any]]:
            # The module's names hold the base classes too, when it imports them by name.
            classes = [s for s in symbols if not any(s is base for base in abstract)]
            chainlets = {s for s in classes if utils.issubclass_safe(s, framework.ChainletBase)}
            if not chainlets:
                chainlets = {s for s in classes if utils.issubclass_safe(s, framework.ModelBase)}
            return chainlets, {c for c in chainlets if c.meta_data.is_entrypoint}

        @classmethod
        def _no_entrypoint_error(cls, module_path: pathlib.Path) -> ValueError:
            return ValueError(
                f"no entrypoint in `{module_path}`: tag one ChainletBase class with "
                "`@chains.mark_entrypoint`, define one `chains.ModelBase` class, or name the "
                "class on the command line"
            )

        @classmethod
        def _multiple_entrypoints_error(
            cls, module_path: pathlib.Path, entrypoints: set[Any]
        ) -> ValueError:
            names = sorted(e.name for e in entrypoints)
            if all(utils.issubclass_safe(e, framework.ModelBase) for e in entrypoints):
                return ValueError(
                    f"`{module_path}` defines several `chains.ModelBase` classes {names}: name "
                    "the one to push on the command line"
                )
            return ValueError(
                f"several chainlets in `{module_path}` are tagged with "
                f"`@chains.mark_entrypoint` {names}: tag one, or name it on the command line"
            )

    return ChainOrModelImporter


def is_model(desc: Any) -> bool:
    from truss_chains import private_types

    return bool(desc.chainlet_cls.entity_type == private_types.EntityType.MODEL)


def is_websocket(desc: Any) -> bool:
    return bool(desc.endpoint.is_websocket)


def servable(desc: Any) -> Any:
    """`desc`, when chainyard can serve the chainlet it describes; UnservableChainlet if not."""
    from truss.base import truss_config
    from truss_chains import framework

    cls = desc.chainlet_cls
    if framework.is_truss_chainlet(cls):
        raise UnservableChainlet(
            f"`{cls.__name__}` is a chains.TrussChainlet: Baseten serves it from an existing "
            "Truss directory with its own truss server image, which chainyard does not run; "
            "write it as a chains.ChainletBase (or chains.ModelBase) class instead"
        )
    if framework.is_engine_builder_chainlet(cls):
        raise UnservableChainlet(
            f"`{cls.__name__}` is a chains.EngineBuilderLLMChainlet: it runs on Baseten's "
            "TensorRT-LLM engine builder images, which chainyard does not have; serve the model "
            "from a chains.ChainletBase class instead"
        )
    transport = cls.remote_config.options.transport
    if isinstance(transport, truss_config.GRPCOptions):
        raise UnservableChainlet(
            f"`{cls.__name__}`: options.transport GRPCOptions is not supported by chainyard "
            "(its replicas speak HTTP and WebSocket); remove the transport option"
        )
    return desc


def endpoint_method(chainlet: Any, desc: Any) -> Any:
    """The bound method a request calls: `run_remote`, or `predict` for a chains.ModelBase."""
    return getattr(chainlet, desc.endpoint.name)
