"""The instance-type catalogue as the API shows it."""

from __future__ import annotations

from chainyard.domain.errors import Invalid
from chainyard.domain.instance_types import Catalogue, InstanceType
from chainyard.schemas import InstanceTypeV1, InstanceTypeWithPriceV1
from chainyard.services import views


def require(catalogue: Catalogue, instance_type_id: str) -> InstanceType:
    it = catalogue.get(instance_type_id)
    if it is None:
        raise Invalid(
            f"unknown instance type '{instance_type_id}'; GET /v1/instance_types lists them",
            code="UNKNOWN_INSTANCE_TYPE",
        )
    return it


def list_(catalogue: Catalogue) -> list[InstanceTypeV1]:
    return [views.instance_type_v1(it) for it in catalogue.all()]


def list_prices(catalogue: Catalogue) -> list[InstanceTypeWithPriceV1]:
    return [
        InstanceTypeWithPriceV1(instance_type=views.instance_type_v1(it), price=it.price_per_minute)
        for it in catalogue.all()
    ]
