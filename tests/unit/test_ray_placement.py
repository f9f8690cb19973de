"""What the Ray runtime asks Ray for, and how it tells that no node can take a replica (no Ray
needed: these are pure functions)."""

from __future__ import annotations

from typing import Any

from chainyard.domain.instance_types import default_catalogue
from chainyard.runtime.ray_messages import actor_error, env_error
from chainyard.runtime.ray_resources import (
    ACCELERATOR_SHARE,
    placement_problem,
    replica_resources,
)

GiB = float(2**30)


def instance_type(type_id: str) -> dict[str, Any]:
    it = default_catalogue().get(type_id)
    assert it is not None
    return {
        "id": it.id,
        "millicpu_limit": it.millicpu_limit,
        "memory_limit_mib": it.memory_limit_mib,
        "gpu_count": it.gpu_count,
        "gpu_type": it.gpu_type,
    }


def test_cpu_type_asks_for_cpus_and_memory() -> None:
    assert replica_resources(instance_type("2x8")) == {"CPU": 2.0, "memory": 8 * GiB}


def test_gpu_type_asks_for_gpus_of_its_family() -> None:
    wanted = replica_resources(instance_type("A10G:2x24x96"))
    assert wanted["GPU"] == 2.0
    assert wanted["CPU"] == 24.0
    assert wanted["accelerator_type:A10G"] == ACCELERATOR_SHARE
    assert set(wanted) == {"CPU", "memory", "GPU", "accelerator_type:A10G"}


def test_fractional_cpus() -> None:
    assert replica_resources({"id": "x", "millicpu_limit": 500})["CPU"] == 0.5


HEAD = {"CPU": 8.0, "memory": 64 * GiB, "node:__internal_head__": 1.0}
A10G_NODE = {"CPU": 8.0, "memory": 64 * GiB, "GPU": 1.0, "accelerator_type:A10G": 1.0}


def test_a_type_some_node_fits_is_placeable() -> None:
    for type_id in ("1x2", "4x16", "A10Gx4x16"):
        it = instance_type(type_id)
        assert placement_problem(it, replica_resources(it), [HEAD, A10G_NODE]) is None


def test_no_node_with_the_gpu_is_a_problem_that_says_why() -> None:
    it = instance_type("H100")
    problem = placement_problem(it, replica_resources(it), [HEAD, A10G_NODE])
    assert problem is not None
    assert problem.startswith("cannot be scheduled: instance type H100 needs")
    assert "16 CPU, 118 GiB memory, 1x H100 GPU" in problem
    assert "(nodes: 8 CPU, 64 GiB memory; 8 CPU, 64 GiB memory, 1x A10G GPU)" in problem
    assert "no node of the Ray cluster has that" in problem


def test_gpu_count_and_size_count_too() -> None:
    two = instance_type("A10G:2x24x96")
    assert placement_problem(two, replica_resources(two), [HEAD, A10G_NODE]) is not None
    big = instance_type("16x64")
    assert placement_problem(big, replica_resources(big), [HEAD, A10G_NODE]) is not None
    assert placement_problem(big, replica_resources(big), []) is not None


def test_pip_errors_are_picked_out_of_rays_traceback() -> None:
    text = (
        "Failed to set up runtime environment.\n  File x, line 1\n"
        "Last 50 lines of stdout:\n    Looking in indexes: https://pypi.org/simple\n"
        "    ERROR: Could not find a version that satisfies the requirement nope==1.0\n"
        "    ERROR: No matching distribution found for nope==1.0\n"
    )
    assert env_error(text) == (
        "ERROR: Could not find a version that satisfies the requirement nope==1.0 "
        "ERROR: No matching distribution found for nope==1.0"
    )
    assert env_error("a\nb\nc\nd") == "b c d"


def test_node_death_reads_as_such() -> None:
    error = RuntimeError(
        "The actor died unexpectedly before finishing this task.\n\tclass_name: X\n"
        "The actor died because its node has died. Node Id: abc\n"
    )
    assert actor_error(error).startswith("the Ray node running the replica died")
    assert actor_error(RuntimeError("boom")) == "the replica's Ray actor failed: boom"
