"""Instance types (hardware shapes) and their prices."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "InstanceTypePricesV1",
    "InstanceTypeV1",
    "InstanceTypeWithPriceV1",
    "InstanceTypesV1",
]


class InstanceTypeV1(BaseModel):
    """A hardware shape a chainlet can run on."""

    id: str = Field(description="Instance type identifier, e.g. '1x4' or 'A10G:2x24x96'")
    name: str = Field(description="Human-readable name")
    memory_limit_mib: int = Field(description="Memory, in MiB")
    millicpu_limit: int = Field(description="CPU, in millicores")
    gpu_count: int = Field(description="Number of GPUs")
    gpu_type: str | None = Field(description="GPU model, null without GPU")
    gpu_memory_limit_mib: int | None = Field(description="Memory per GPU, in MiB")


class InstanceTypesV1(BaseModel):
    """All instance types."""

    instance_types: list[InstanceTypeV1]


class InstanceTypeWithPriceV1(BaseModel):
    """An instance type with its price."""

    instance_type: InstanceTypeV1 = Field(description="The instance type")
    price: float = Field(description="Price in USD per minute")


class InstanceTypePricesV1(BaseModel):
    """All instance types with their prices."""

    instance_types: list[InstanceTypeWithPriceV1]
