"""Failed authentications, throttled per client address.

A key that is not in the authentication cache costs a store lookup, so a client trying ever-new
keys would get one lookup per request, for as long as it likes. Each address has a token bucket
that only failures spend: `burst` failures at once, then `per_second` more each second. While its
bucket is empty, an address's requests that need a lookup are refused (429) before the lookup,
valid keys included, since checking them would tell a guesser which one is right. Other addresses,
and keys authenticated within the cache's lifetime, are not slowed.

IPv6 clients are bucketed by their /64: one host usually holds a whole /64, and could otherwise
take a new address for every attempt.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable

# At most this many addresses are tracked; past it, buckets that have refilled are dropped (they
# hold nothing), and if that is not enough, all are (failing open rather than growing).
_MAX_BUCKETS = 100_000


def bucket_of(host: str) -> str:
    """The bucket an address counts toward: itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP (a test client, a Unix socket's peer)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class FailureThrottle:
    def __init__(
        self, burst: int, per_second: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError("the failed-authentication limit needs burst >= 1 and a rate > 0")
        self.burst = burst
        self.per_second = per_second
        self.clock = clock
        # Authentication runs in worker threads.
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, as of)

    def _tokens(self, bucket: str, now: float) -> float:
        tokens, since = self._buckets.get(bucket, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - since) * self.per_second)

    def wait(self, host: str) -> float:
        """0.0 if `host` may try a key now, else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens = self._tokens(bucket_of(host), now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_second

    def failed(self, host: str) -> None:
        """Spends one of `host`'s tokens for a failed authentication."""
        now = self.clock()
        bucket = bucket_of(host)
        with self._lock:
            tokens = self._tokens(bucket, now)
            if bucket not in self._buckets and len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(now)
            self._buckets[bucket] = (max(0.0, tokens - 1.0), now)

    def _forget_full(self, now: float) -> None:
        full = [b for b in self._buckets if self._tokens(b, now) >= self.burst]
        for bucket in full:
            del self._buckets[bucket]
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()
