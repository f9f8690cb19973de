"""What `chainyard push` learns from a chain file: the entrypoint, the graph and each chainlet's
resources, requirements and secrets."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any


class ChainDiscoveryError(Exception):
    """The chain file cannot be imported or is not a valid chain; the message says why."""


@dataclasses.dataclass(frozen=True)
class ChainletInfo:
    name: str
    is_entrypoint: bool
    dependencies: list[str]
    cpu_count: Any
    memory: str
    gpu: str | None
    gpu_count: int
    predict_concurrency: int
    pip_requirements: list[str]
    secret_keys: list[str]
    # Image settings, assets and options (chains.image_settings), as manifest fields.
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        compute: dict[str, Any] = {
            "cpu_count": self.cpu_count,
            "memory": self.memory,
            "predict_concurrency": self.predict_concurrency,
        }
        if self.gpu:
            compute["gpu"] = self.gpu
            compute["gpu_count"] = self.gpu_count
        return {
            "name": self.name,
            "dependencies": list(self.dependencies),
            "compute": compute,
            "is_entrypoint": self.is_entrypoint,
            "pip_requirements": list(self.pip_requirements),
            "secret_keys": list(self.secret_keys),
            **self.settings,
        }


@dataclasses.dataclass(frozen=True)
class ChainInfo:
    source_file: pathlib.Path
    entrypoint: str
    chain_name: str
    chainlets: list[ChainletInfo]


def discover(path: pathlib.Path, entrypoint: str | None = None) -> ChainInfo:
    """Imports `path` with truss_chains and describes the chain reachable from its entrypoint."""
    from chainyard.chains import image_settings, kinds, replica_health, truss_compat

    path = path.resolve()
    if not path.is_file():
        raise ChainDiscoveryError(f"{path} is not a file")
    try:
        with truss_compat.imported_chain(path, entrypoint) as entry_cls:
            descriptors = truss_compat.reachable_descriptors(entry_cls)
            facts = [truss_compat.chainlet_facts(kinds.servable(d)) for d in descriptors]
            for d in descriptors:
                # health_checks values Baseten refuses are refused at push, not at start.
                replica_health.chainlet_thresholds(d)
            settings = {
                d.name: image_settings.describe(d.chainlet_cls.remote_config, path.parent)
                for d in descriptors
            }
            entry_name = truss_compat.descriptor(entry_cls).name
    except ChainDiscoveryError:
        raise
    except image_settings.ImageSettingsError as exc:
        raise ChainDiscoveryError(str(exc)) from exc
    except Exception as exc:  # truss_chains raises many types for a bad chain file
        raise ChainDiscoveryError(f"cannot load chain from {path}: {exc}") from exc
    finally:
        sys.modules.pop(path.stem, None)
    chainlets = [
        ChainletInfo(
            name=f["name"],
            is_entrypoint=f["name"] == entry_name,
            dependencies=f["dependencies"],
            cpu_count=f["cpu_count"],
            memory=f["memory"],
            gpu=f["gpu"],
            gpu_count=f["gpu_count"],
            predict_concurrency=f["predict_concurrency"],
            pip_requirements=f["pip_requirements"],
            secret_keys=f["secret_keys"],
            settings=settings[f["name"]],
        )
        for f in facts
    ]
    entry_facts = next(f for f in facts if f["name"] == entry_name)
    chain_name = entry_facts["chain_name"] or entry_facts["display_name"] or entry_name
    return ChainInfo(
        source_file=path, entrypoint=entry_name, chain_name=chain_name, chainlets=chainlets
    )
