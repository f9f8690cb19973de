"""Autoscaling settings: defaults, ranges and partial updates."""

from __future__ import annotations

from typing import Any

import pytest

from chainyard.domain.autoscaling import RANGES, AutoscalingSettings, apply_update
from chainyard.domain.errors import Invalid

DEFAULTS = AutoscalingSettings()


def test_baseten_defaults() -> None:
    assert DEFAULTS.to_dict() == {
        "min_replica": 0,
        "max_replica": 1,
        "autoscaling_window": 60,
        "scale_down_delay": 900,
        "concurrency_target": 1,
        "target_utilization_percentage": 70,
        "target_in_flight_tokens": None,
        "max_scale_down_rate": None,
    }


def test_from_dict_round_trips_and_ignores_unknown_keys() -> None:
    settings = AutoscalingSettings(min_replica=2, max_replica=5, max_scale_down_rate=10)
    assert AutoscalingSettings.from_dict(settings.to_dict()) == settings
    assert AutoscalingSettings.from_dict({"max_replica": 3, "other": 1}).max_replica == 3
    assert AutoscalingSettings.from_dict(None) == DEFAULTS
    assert AutoscalingSettings.from_dict({}) == DEFAULTS


def test_partial_update_changes_only_sent_fields() -> None:
    start = AutoscalingSettings(max_replica=4, scale_down_delay=30)
    result = apply_update(start, {"concurrency_target": 8})
    assert result.concurrency_target == 8
    assert result.max_replica == 4 and result.scale_down_delay == 30
    assert dict(result.to_dict(), concurrency_target=1) == start.to_dict()


def test_empty_update_is_identity() -> None:
    start = AutoscalingSettings(min_replica=1, max_replica=3)
    assert apply_update(start, {}) == start


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_replica", -1),
        ("max_replica", 0),
        ("autoscaling_window", 5),
        ("autoscaling_window", 3601),
        ("scale_down_delay", -1),
        ("scale_down_delay", 3601),
        ("concurrency_target", 0),
        ("target_utilization_percentage", 0),
        ("target_utilization_percentage", 101),
        ("target_in_flight_tokens", 0),
        ("max_scale_down_rate", 0),
        ("max_scale_down_rate", 60),
    ],
)
def test_out_of_range_names_the_field(field: str, value: int) -> None:
    with pytest.raises(Invalid) as info:
        apply_update(DEFAULTS, {field: value})
    assert info.value.code == "AUTOSCALING_OUT_OF_RANGE"
    assert f"'{field}'" in info.value.message
    assert str(value) in info.value.message


@pytest.mark.parametrize("field", sorted(RANGES))
def test_range_bounds_are_inclusive(field: str) -> None:
    low, high = RANGES[field]
    base = AutoscalingSettings(min_replica=0, max_replica=1000)
    assert getattr(apply_update(base, {field: low}), field) == low
    if high is not None:
        assert getattr(apply_update(base, {field: high}), field) == high


def test_min_above_max_is_refused_after_merging() -> None:
    with pytest.raises(Invalid, match="min_replica") as info:
        apply_update(AutoscalingSettings(max_replica=2), {"min_replica": 3})
    assert info.value.code == "AUTOSCALING_OUT_OF_RANGE"
    with pytest.raises(Invalid, match="max_replica"):
        apply_update(AutoscalingSettings(min_replica=2, max_replica=4), {"max_replica": 1})
    # Raising both together is fine.
    result = apply_update(DEFAULTS, {"min_replica": 3, "max_replica": 5})
    assert (result.min_replica, result.max_replica) == (3, 5)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(Invalid, match="'replicas'") as info:
        apply_update(DEFAULTS, {"replicas": 2})
    assert info.value.code == "UNKNOWN_FIELD"


@pytest.mark.parametrize("value", [True, 1.5, "3", [1]])
def test_non_integers_are_refused(value: Any) -> None:
    with pytest.raises(Invalid, match="must be an integer"):
        apply_update(DEFAULTS, {"max_replica": value})


def test_null_resets_or_clears() -> None:
    start = AutoscalingSettings(scale_down_delay=10, max_scale_down_rate=20)
    result = apply_update(start, {"scale_down_delay": None, "max_scale_down_rate": None})
    assert result.scale_down_delay == DEFAULTS.scale_down_delay
    assert result.max_scale_down_rate is None


def test_apply_update_does_not_mutate_its_input() -> None:
    start = AutoscalingSettings(max_replica=3)
    apply_update(start, {"max_replica": 7})
    assert start.max_replica == 3
