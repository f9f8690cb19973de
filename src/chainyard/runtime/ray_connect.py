"""The server's connection to Ray, held by a thread of its own.

`ray.init` blocks: it starts a local Ray, or connects to a cluster's GCS, and at an address where
nothing answers it keeps retrying for minutes. On the event loop that would stall everything else
the loop runs, a stop signal included. So it runs in a thread, and the server waits for it at most
`timeout` seconds, then fails with a message that names the address.

That thread lives as long as the connection and also disconnects (`ray.shutdown`): the processes
of a local Ray are started with PR_SET_PDEATHSIG, which kills them when the *thread* that started
them ends, so a thread that only ran `ray.init` would take the Ray it started with it. It is a
daemon thread: one that Ray never lets return does not hold up the process's exit. A connect given
up on (timeout, or the server stopping meanwhile) that succeeds later disconnects at once.

Off the main thread `ray.init` leaves the process's SIGTERM handler alone (signal handlers can
only be installed from the main thread; Ray checks and skips it), so the server's own handler, a
graceful shutdown that stops every replica, stays in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from chainyard.runtime.base import RuntimeUnavailable

log = logging.getLogger("chainyard.runtime.ray")

# Long enough for a local Ray to start on a busy machine, and for a remote GCS to answer.
DEFAULT_CONNECT_TIMEOUT = 60.0


class _NotMainThreadNote(logging.Filter):
    """Drops Ray's warning that it set no SIGTERM handler: not setting one is what we want."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def describe(address: str) -> str:
    return "start a local Ray" if address == "local" else f"connect to Ray at {address}"


class RayConnection:
    def __init__(self, ray: Any, address: str, **options: Any) -> None:
        self.ray = ray
        self.address = address
        self.options = options
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, name="chainyard-ray", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None

    async def open(self, timeout: float) -> None:
        """Connects; RuntimeUnavailable when that fails or takes longer than `timeout` seconds.
        Cancelling the caller gives the connect up as well."""
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._thread.start()
        try:
            await asyncio.wait_for(self._connected, timeout)
        except TimeoutError:
            self._release.set()
            raise RuntimeUnavailable(
                f"cannot {describe(self.address)}: no answer within {timeout:g} s (is the "
                "address right and the cluster up? CHAINYARD_RAY_CONNECT_TIMEOUT sets how long "
                "to wait)"
            ) from None
        except asyncio.CancelledError:
            self._release.set()
            raise
        except Exception as exc:
            raise RuntimeUnavailable(f"cannot {describe(self.address)}: {exc}") from exc

    async def close(self) -> None:
        """Disconnects (a local Ray stops) and waits until that is done."""
        self._release.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    def _hold(self) -> None:
        note = _NotMainThreadNote()
        ray_log = logging.getLogger("ray._private.worker")
        ray_log.addFilter(note)
        try:
            self.ray.init(address=self.address, **self.options)
        except Exception as exc:
            self._report(exc)
            return
        except BaseException as exc:  # e.g. SystemExit from Ray: the loop's thread decides
            self._report(RuntimeError(repr(exc)))
            return
        finally:
            ray_log.removeFilter(note)
        if self._release.is_set():
            log.warning("Ray answered after the server gave up on it; disconnecting")
        else:
            self._report(None)
        self._release.wait()
        self.ray.shutdown()

    def _report(self, error: BaseException | None) -> None:
        loop, connected = self._loop, self._connected
        assert loop is not None and connected is not None

        def settle() -> None:
            if connected.done():
                return  # given up on
            if error is None:
                connected.set_result(None)
            else:
                connected.set_exception(error)

        # RuntimeError: the loop is gone, nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)
