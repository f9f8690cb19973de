"""In-flight request history per chainlet, as a step function.

The autoscaler samples demand every tick, but most chainlets of a large fleet are idle most of the
time. Storing only the points where a chainlet's demand changes keeps an idle chainlet at one
entry and a tick's cost proportional to the chainlets whose demand moved, not to the fleet.
Averages are time-weighted over the window.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

# The longest window a setting may ask for (autoscaling_window's upper bound).
MAX_WINDOW = 3600.0


class TrafficSamples:
    def __init__(self) -> None:
        # chainlet id -> (time, value) change points, oldest first; a value holds until the next.
        self._series: dict[str, collections.deque[tuple[float, float]]] = {}
        self._nonzero: set[str] = set()

    def record(self, now: float, counts: Mapping[str, float], chainlets: Iterable[str]) -> None:
        """Demand now: `counts` for chainlets with requests; zero for the others. `chainlets`
        adds chainlets to track (from zero) that have not been seen before."""
        for chainlet_id in set(counts) | self._nonzero:
            self._set(chainlet_id, now, float(counts.get(chainlet_id, 0)))
        for chainlet_id in chainlets:
            if chainlet_id not in self._series:
                self._set(chainlet_id, now, float(counts.get(chainlet_id, 0)))

    def _set(self, chainlet_id: str, now: float, value: float) -> None:
        series = self._series.setdefault(chainlet_id, collections.deque())
        if series and series[-1][1] == value:
            return
        series.append((now, value))
        if value:
            self._nonzero.add(chainlet_id)
        else:
            self._nonzero.discard(chainlet_id)
        # Keep one point at or before the oldest window's start: it gives the value there.
        while len(series) > 1 and series[1][0] <= now - MAX_WINDOW:
            series.popleft()

    def average(self, chainlet_id: str, now: float, window: float) -> float:
        """Time-weighted average over the last `window` seconds. Before a chainlet was first
        seen its demand counts as zero: one busy first sample is not a whole window's worth."""
        series = self._series.get(chainlet_id)
        if not series:
            return 0.0
        start = now - window
        area = 0.0
        end = now
        for t, value in reversed(series):
            if t > now:
                continue  # recorded after the time asked about
            begin = max(t, start)
            if end > begin:
                area += value * (end - begin)
            end = begin
            if t <= start:
                break
        return area / window if window > 0 else series[-1][1]

    def is_idle(self, chainlet_id: str) -> bool:
        return chainlet_id not in self._nonzero

    def idle_since(self, chainlet_id: str) -> float | None:
        """When the demand of an idle chainlet last went to zero (None: busy or unknown)."""
        series = self._series.get(chainlet_id)
        if not series or chainlet_id in self._nonzero:
            return None
        return series[-1][0]

    def forget(self, keep: set[str]) -> None:
        for chainlet_id in list(self._series):
            if chainlet_id not in keep:
                del self._series[chainlet_id]
                self._nonzero.discard(chainlet_id)
