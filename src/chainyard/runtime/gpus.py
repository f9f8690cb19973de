"""Which GPUs this machine has (nvidia-smi), and whether an instance type can be placed here."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections import Counter
from typing import Any


@functools.cache
def local_gpus() -> Counter[str]:
    """GPU model names reported by nvidia-smi, counted; empty without NVIDIA GPUs."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return Counter()
    try:
        out = subprocess.run(
            [binary, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return Counter()
    return Counter(line.strip() for line in out.splitlines() if line.strip())


def _matches(model_name: str, gpu_type: str) -> bool:
    # nvidia-smi says e.g. "NVIDIA A10G" or "NVIDIA H100 80GB HBM3"; instance types say "A10G".
    family = gpu_type.upper().replace("MIG", "")
    return family in model_name.upper().replace("-", " ").replace("_", " ").split() or (
        family.replace("-", " ") in model_name.upper()
    )


def placement_problem(instance_type: dict[str, Any]) -> str | None:
    """None if a replica of this instance type can run here, else why not (never a silent CPU
    fallback for a GPU type)."""
    count = int(instance_type.get("gpu_count") or 0)
    if count == 0:
        return None
    gpu_type = str(instance_type.get("gpu_type") or "")
    have = sum(n for name, n in local_gpus().items() if _matches(name, gpu_type))
    if have >= count:
        return None
    present = ", ".join(f"{n}x {name}" for name, n in local_gpus().items()) or "no NVIDIA GPU"
    return (
        f"cannot be scheduled: instance type {instance_type.get('id')} needs {count}x {gpu_type}, "
        f"this machine has {present}"
    )
