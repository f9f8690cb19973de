"""Autoscaling settings: Baseten's defaults, allowed ranges and partial updates.

The policy that turns traffic into replica counts lives with the autoscaler; this module only
knows what a valid setting is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chainyard.domain.errors import Invalid


@dataclasses.dataclass(frozen=True)
class AutoscalingSettings:
    min_replica: int = 0
    max_replica: int = 1
    autoscaling_window: int = 60
    scale_down_delay: int = 900
    concurrency_target: int = 1
    target_utilization_percentage: int = 70
    target_in_flight_tokens: int | None = None
    max_scale_down_rate: int | None = None

    def to_dict(self) -> dict[str, Any]:
        # Every field is a scalar: dataclasses.asdict's deep copy would only cost time (it
        # showed in the instance-type update's profile).
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AutoscalingSettings:
        if not data:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in _FIELD_NAMES})


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(AutoscalingSettings))

# A development deployment "can't scale past one replica" and "scales to zero when not in use"
# (Baseten); its other settings are the defaults. Spelt out rather than left to the defaults,
# which may change for published deployments.
DEVELOPMENT = AutoscalingSettings(min_replica=0, max_replica=1)


# Inclusive ranges; None as an upper bound means unbounded. Baseten documents the window, delay,
# utilization and scale-down-rate ranges; the replica bounds keep a typo from asking for a fleet.
RANGES: dict[str, tuple[int, int | None]] = {
    "min_replica": (0, 1000),
    "max_replica": (1, 1000),
    "autoscaling_window": (10, 3600),
    "scale_down_delay": (0, 3600),
    "concurrency_target": (1, 100_000),
    "target_utilization_percentage": (1, 100),
    "target_in_flight_tokens": (1, None),
    "max_scale_down_rate": (1, 50),
}

# Fields that may be null in a stored setting; the rest always hold a number.
_NULLABLE = frozenset({"target_in_flight_tokens", "max_scale_down_rate"})


def _check_range(field: str, value: int) -> None:
    low, high = RANGES[field]
    if value < low or (high is not None and value > high):
        upper = f"{high}" if high is not None else "any"
        raise Invalid(
            f"autoscaling setting '{field}' must be between {low} and {upper}, got {value}",
            code="AUTOSCALING_OUT_OF_RANGE",
        )


def apply_update(current: AutoscalingSettings, update: Mapping[str, Any]) -> AutoscalingSettings:
    """`current` with the fields present in `update` replaced, validated as a whole.

    `update` holds only the fields the client sent (a PATCH), so an omitted field never overwrites.
    A null for a field that cannot be null resets it to its default.
    """
    changes: dict[str, Any] = {}
    defaults = AutoscalingSettings()
    for field, value in update.items():
        if field not in RANGES:
            raise Invalid(f"unknown autoscaling setting '{field}'", code="UNKNOWN_FIELD")
        if value is None:
            changes[field] = None if field in _NULLABLE else getattr(defaults, field)
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"autoscaling setting '{field}' must be an integer", code="INVALID_TYPE")
        _check_range(field, value)
        changes[field] = value
    result = dataclasses.replace(current, **changes)
    if result.min_replica > result.max_replica:
        raise Invalid(
            f"min_replica ({result.min_replica}) must not exceed "
            f"max_replica ({result.max_replica})",
            code="AUTOSCALING_OUT_OF_RANGE",
        )
    return result
