"""The gateway's route cache keeps an answer only if no routing change committed while it was
being read, and forgets answers after its time to live."""

from __future__ import annotations

from chainyard.gateway.route_cache import RouteCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_route_is_kept_until_invalidated() -> None:
    cache: RouteCache[str] = RouteCache(clock=Clock())
    cache.put("k", "deployment-a", cache.generation)
    assert cache.get("k") == "deployment-a"
    cache.invalidate()
    assert cache.get("k") is None


def test_an_answer_read_before_a_change_committed_is_not_kept() -> None:
    cache: RouteCache[str] = RouteCache(clock=Clock())
    generation = cache.generation  # the resolution starts reading here ...
    cache.invalidate()  # ... a promotion commits meanwhile ...
    cache.put("k", "old-deployment", generation)  # ... and its answer may be the old one
    assert cache.get("k") is None
    cache.put("k", "new-deployment", cache.generation)
    assert cache.get("k") == "new-deployment"


def test_a_route_expires_after_its_ttl() -> None:
    clock = Clock()
    cache: RouteCache[str] = RouteCache(ttl=2.0, clock=clock)
    cache.put("k", "v", cache.generation)
    clock.now += 1.9
    assert cache.get("k") == "v"
    clock.now += 0.2
    assert cache.get("k") is None


def test_a_stale_route_is_refreshed_in_the_background_or_forgotten() -> None:
    import asyncio

    clock = Clock()
    cache: RouteCache[str] = RouteCache(ttl=2.0, clock=clock)
    cache.put("k", "old", cache.generation)
    clock.now += 3
    assert cache.get("k") is None
    assert cache.stale("k") == "old"
    calls: list[str] = []

    async def resolve_new() -> str | None:
        calls.append("new")
        return "new"

    async def gone() -> str | None:
        raise LookupError("the chain was deleted")

    async def main() -> None:
        cache.refresh("k", resolve_new)
        cache.refresh("k", resolve_new)  # one refresh at a time per route
        await asyncio.sleep(0.01)
        assert calls == ["new"]
        assert cache.get("k") == "new"
        clock.now += 3
        cache.refresh("k", gone)
        await asyncio.sleep(0.01)
        assert cache.stale("k") is None

    asyncio.run(main())
