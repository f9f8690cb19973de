"""The failed-authentication bucket per client address, on a clock the test moves."""

from __future__ import annotations

import pytest

from chainyard.services import auth_throttle
from chainyard.services.auth_throttle import FailureThrottle, bucket_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_refill_rate() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 2.0, clock=clock)
    for _ in range(3):
        assert throttle.wait("192.0.2.1") == 0.0
        throttle.failed("192.0.2.1")
    assert throttle.wait("192.0.2.1") == pytest.approx(0.5)
    assert throttle.wait("192.0.2.2") == 0.0
    clock.now += 0.25
    assert throttle.wait("192.0.2.1") == pytest.approx(0.25)
    clock.now += 0.25
    assert throttle.wait("192.0.2.1") == 0.0
    throttle.failed("192.0.2.1")
    assert throttle.wait("192.0.2.1") == pytest.approx(0.5)
    # Back to a full burst after long enough, and never more than one.
    clock.now += 3600
    for _ in range(3):
        assert throttle.wait("192.0.2.1") == 0.0
        throttle.failed("192.0.2.1")
    assert throttle.wait("192.0.2.1") > 0


def test_buckets_by_address() -> None:
    assert bucket_of("192.0.2.1") == "192.0.2.1"
    assert bucket_of("2001:db8::1") == bucket_of("2001:db8::ffff:1") == "2001:db8::/64"
    assert bucket_of("2001:db8:0:1::1") != bucket_of("2001:db8::1")
    assert bucket_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert bucket_of("testclient") == "testclient"


def test_tracked_addresses_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_throttle, "_MAX_BUCKETS", 10)
    clock = Clock()
    throttle = FailureThrottle(2, 1.0, clock=clock)
    for i in range(10):
        throttle.failed(f"192.0.2.{i}")
    throttle.failed("192.0.2.0")  # empty now
    clock.now += 1.5  # the others have refilled; 192.0.2.0 has not
    throttle.failed("198.51.100.1")
    assert len(throttle._buckets) == 2
    # 192.0.2.0 kept its count (1.5 tokens): one more failure leaves it short of a token.
    throttle.failed("192.0.2.0")
    assert throttle.wait("192.0.2.0") > 0


def test_settings_it_cannot_honour_are_refused() -> None:
    with pytest.raises(ValueError):
        FailureThrottle(0, 1.0)
    with pytest.raises(ValueError):
        FailureThrottle(5, 0.0)
