"""Instance types and their prices."""

from __future__ import annotations

from fastapi import APIRouter

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas import InstanceTypePricesV1, InstanceTypesV1
from chainyard.services import instance_types

router = APIRouter(prefix="/v1", tags=["instance types"])


@router.get(
    "/instance_types", response_model=InstanceTypesV1, summary="Gets all available instance types"
)
def list_instance_types(core: CoreDep, actor: Manager) -> InstanceTypesV1:
    return InstanceTypesV1(instance_types=instance_types.list_(core.catalogue))


@router.get(
    "/instance_type_prices",
    response_model=InstanceTypePricesV1,
    summary="Gets prices for available instance types",
)
def list_instance_type_prices(core: CoreDep, actor: Manager) -> InstanceTypePricesV1:
    return InstanceTypePricesV1(instance_types=instance_types.list_prices(core.catalogue))
