"""The live sampler: change points per chainlet, a bounded window, idle chainlets forgotten."""

from __future__ import annotations

import collections

from chainyard.services.live import LiveSampler


class Sources:
    """Stand-ins for the runtime's replica list and the gateway's counters, changed by the test."""

    def __init__(self) -> None:
        self.replicas: list[tuple[str, str]] = []
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.queued: collections.Counter[str] = collections.Counter()
        self.now = 1000.0

    def sampler(self, window: int = 60) -> LiveSampler:
        return LiveSampler(
            lambda: self.replicas,
            lambda: self.in_flight,
            lambda: self.queued,
            interval=1.0,
            window=window,
            clock=lambda: self.now,
        )


def test_read_counts_phases_and_requests_per_chainlet() -> None:
    s = Sources()
    s.replicas = [("a", "READY"), ("a", "READY"), ("a", "STARTING"), ("b", "STOPPING")]
    s.in_flight["a"] = 3
    s.queued["c"] = 2
    s.in_flight["idle"] = 0
    figures = s.sampler().read()
    assert set(figures) == {"a", "c"}
    assert (figures["a"].ready, figures["a"].starting, figures["a"].in_flight) == (2, 1, 3)
    assert figures["c"].queued == 2


def test_only_changes_are_kept_and_the_series_steps() -> None:
    s = Sources()
    sampler = s.sampler()
    for second in range(10):
        s.now = 1000.0 + second
        s.replicas = [("a", "READY")] if second >= 3 else [("a", "STARTING")]
        s.in_flight["a"] = 2 if 5 <= second < 7 else 0
        sampler.sample()
    series = sampler.series("a", since=1000.0)
    assert series.t == [1000.0, 1003.0, 1005.0, 1007.0]
    assert series.ready == [0, 1, 1, 1]
    assert series.starting == [1, 0, 0, 0]
    assert series.in_flight == [0, 0, 2, 0]


def test_the_first_point_is_moved_to_the_window_start() -> None:
    s = Sources()
    sampler = s.sampler()
    s.replicas = [("a", "READY")]
    sampler.sample()
    s.now = 1030.0
    s.in_flight["a"] = 1
    sampler.sample()
    series = sampler.series("a", since=1010.0)
    assert series.t == [1010.0, 1030.0]
    assert series.ready == [1, 1]
    assert series.in_flight == [0, 1]


def test_a_chainlet_never_seen_is_flat_zero_from_the_sampler_start() -> None:
    s = Sources()
    sampler = s.sampler()
    s.now = 1100.0
    series = sampler.series("nobody", since=900.0)
    assert series.t == [1000.0]
    assert series.ready == series.in_flight == [0]


def test_old_points_leave_the_window_and_idle_chainlets_are_forgotten() -> None:
    s = Sources()
    sampler = s.sampler(window=60)
    for second in range(200):
        s.now = 1000.0 + second
        # Busy for 100 s with a new value every second, then idle.
        s.in_flight["a"] = (second % 3) + 1 if second < 100 else 0
        sampler.sample()
        assert len(sampler._points.get("a", ())) <= 62
    # Idle for more than the window: nothing is kept about it.
    assert sampler.tracked() == 0
    assert sampler.series("a", since=s.now - 60).in_flight == [0]


def test_a_sample_keeps_what_held_at_the_window_start() -> None:
    s = Sources()
    sampler = s.sampler(window=60)
    s.replicas = [("a", "READY")]
    sampler.sample()
    for second in range(1, 120):
        s.now = 1000.0 + second
        sampler.sample()
    series = sampler.series("a", since=s.now - 60)
    # One ready replica throughout, though it changed 2 minutes ago.
    assert series.ready == [1]
    assert series.t == [s.now - 60]


def test_figures_read_now_end_the_series() -> None:
    s = Sources()
    sampler = s.sampler()
    sampler.sample()
    s.now = 1000.4
    s.replicas = [("a", "READY")]
    figures = sampler.read()["a"]
    series = sampler.series("a", since=940.0, latest=(s.now, figures))
    assert series.t == [1000.0, 1000.4]
    assert series.ready == [0, 1]
    # Nothing changed since the last sample: no extra point.
    sampler.sample()
    assert sampler.series("a", since=940.0, latest=(s.now, figures)).t == [1000.0, 1000.4]


def test_unchanged_replicas_and_requests_skip_the_sample() -> None:
    s = Sources()
    s.replicas = [("a", "READY")]
    reads = 0

    def replicas() -> list[tuple[str, str]]:
        nonlocal reads
        reads += 1
        return s.replicas

    sampler = LiveSampler(
        replicas,
        lambda: s.in_flight,
        lambda: s.queued,
        interval=1.0,
        window=60,
        clock=lambda: s.now,
        version=lambda: s.replicas,
    )
    sampler.sample()
    s.now += 1
    sampler.sample()
    assert reads == 1  # the same replica list and no requests: nothing to look at
    s.in_flight["a"] = 2
    s.now += 1
    sampler.sample()
    assert reads == 2
    s.replicas = [("a", "READY"), ("a", "STARTING")]  # a new list: the runtime changed
    s.now += 1
    sampler.sample()
    assert reads == 3
    series = sampler.series("a", s.now - 10)
    assert series.in_flight[-1] == 2 and series.starting[-1] == 1


def test_following_changes_agrees_with_counting_everything() -> None:
    """Each sample applies only the replicas that came or went; after every one, the latest
    point of each chainlet is what counting the whole list gives."""
    import random

    rng = random.Random(3)
    s = Sources()
    sampler = s.sampler()
    pool = [
        (f"c{rng.randrange(12)}", rng.choice(["READY", "STARTING", "STOPPING"])) for _ in range(60)
    ]
    replicas: list[tuple[str, str]] = []
    for step in range(200):
        s.now = 1000.0 + step
        replicas = list(replicas)
        for _ in range(rng.randrange(0, 6)):
            if replicas and rng.random() < 0.4:
                replicas.pop(rng.randrange(len(replicas)))
            else:
                # Sometimes the very same object twice, as a list may hold it.
                replicas.append(
                    rng.choice(pool) if rng.random() < 0.8 else (f"c{step % 12}", "READY")
                )
        s.replicas = replicas
        s.in_flight = collections.Counter({f"c{rng.randrange(12)}": rng.randrange(3)})
        sampler.sample()
        now = sampler.read()
        for chainlet in {f"c{i}" for i in range(12)}:
            latest = sampler.series(chainlet, since=1000.0)
            got = (latest.ready[-1], latest.starting[-1], latest.in_flight[-1], latest.queued[-1])
            want = now.get(chainlet)
            assert got == (
                (want.ready, want.starting, want.in_flight, want.queued) if want else (0, 0, 0, 0)
            ), (step, chainlet)
