"""What a Ray replica asks the cluster for, and why a cluster cannot place it: an instance type
turned into Ray resources, and a chainlet's requirements into a runtime_env's pip list."""

from __future__ import annotations

from typing import Any

from chainyard.runtime import python_envs

# Ray gives every node with GPUs an `accelerator_type:<model>` resource of 1; asking for a sliver
# of it (as Ray's own `accelerator_type=` option does) selects the node without limiting how
# many replicas share it. `num_gpus` does the counting.
ACCELERATOR_SHARE = 0.001


def ray_requirements(pip_requirements: tuple[str, ...], image: dict[str, Any]) -> list[str]:
    """A chainlet's pip requirements and its requirements file's, for runtime_env.pip."""
    from_file = (image.get("requirements_file") or {}).get("requirements", [])
    return python_envs.normalize([*pip_requirements, *from_file])


def replica_resources(instance_type: dict[str, Any]) -> dict[str, float]:
    """The Ray resources one replica of this instance type asks for."""
    millicpu = instance_type.get("millicpu_limit") or 1000
    wanted: dict[str, float] = {"CPU": millicpu / 1000}
    memory_mib = instance_type.get("memory_limit_mib")
    if memory_mib:
        wanted["memory"] = float(int(memory_mib) * 2**20)
    gpus = int(instance_type.get("gpu_count") or 0)
    if gpus > 0:
        wanted["GPU"] = float(gpus)
        wanted[f"accelerator_type:{instance_type.get('gpu_type')}"] = ACCELERATOR_SHARE
    return wanted


def _describe(resources: dict[str, float]) -> str:
    parts = [f"{resources['CPU']:g} CPU"] if "CPU" in resources else []
    if "memory" in resources:
        parts.append(f"{round(resources['memory'] / 2**30, 1):g} GiB memory")
    gpus = resources.get("GPU", 0.0)
    if gpus:
        models = sorted(k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:"))
        parts.append(f"{gpus:g}x {'/'.join(models)} GPU" if models else f"{gpus:g} GPU")
    return ", ".join(parts) or "nothing"


def placement_problem(
    instance_type: dict[str, Any], wanted: dict[str, float], nodes: list[dict[str, float]]
) -> str | None:
    """None if an alive node of the cluster has the resources (free or not), else why not."""
    if any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in nodes):
        return None
    have = "; ".join(_describe(node) for node in nodes) or "no alive node"
    return (
        f"cannot be scheduled: instance type {instance_type.get('id')} needs "
        f"{_describe(wanted)} and no node of the Ray cluster has that (nodes: {have})"
    )
