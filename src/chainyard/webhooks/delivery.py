"""Delivering a webhook: a POST of the signed body to an address that was checked, with a
deadline per attempt and retries with exponential backoff.

An attempt succeeds on a 2xx answer. Any other answer (redirects are not followed), no answer
within the deadline, a refused connection or a name that does not resolve fails it, and the
delivery tries again after a growing delay, up to `RetryPolicy.attempts` attempts. A target the
checks refuse (targets.py) ends the delivery at once: a later attempt would be refused too.

Baseten makes 2 attempts (10 s each, about 2 s apart, retrying 500, 502, 503 and 504 answers);
chainyard makes 4 by default and retries every failure (docs/api-compatibility.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.cookiejar
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

import httpx

from chainyard import __version__
from chainyard.webhooks.signing import SIGNATURE_HEADER, signature_header
from chainyard.webhooks.targets import (
    CheckedTarget,
    TargetPolicy,
    TargetRefused,
    TargetUnresolvable,
    resolve,
)

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-BASETEN-REQUEST-ID"
USER_AGENT = f"chainyard-webhooks/{__version__}"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long each may take, and how long to wait between them."""

    attempts: int = 4
    # Seconds: per attempt (resolution, connection and answer together), and between attempts
    # (`first_delay`, then multiplied by `multiplier` each time, at most `max_delay`).
    timeout: float = 10.0
    first_delay: float = 2.0
    multiplier: float = 2.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout <= 0 or self.first_delay < 0:
            raise ValueError("a retry policy needs attempts >= 1, a timeout > 0, delays >= 0")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (from 1) before the next."""
        return float(min(self.max_delay, self.first_delay * self.multiplier ** (attempt - 1)))


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One POST and how it went."""

    number: int
    delivered: bool
    # The receiver's answer, when there was one.
    status: int | None = None
    # Why it failed (None when delivered).
    error: str | None = None
    # Trying again would not help (a refused target).
    final: bool = False


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A delivery's attempts: delivered when the last one was."""

    attempts: tuple[Attempt, ...]

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].delivered

    @property
    def last_error(self) -> str | None:
        return None if self.delivered or not self.attempts else self.attempts[-1].error

    def summary(self) -> str:
        count = len(self.attempts)
        tries = f"{count} attempt{'s' if count != 1 else ''}"
        if self.delivered:
            return f"delivered ({tries})"
        return f"failed after {tries}: {self.last_error}"


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Receivers' cookies are neither kept nor sent: one receiver's must not reach another."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class Sender:
    """Sends webhooks; one per server, shared by its deliveries (`aclose` when done).

    `verify` is the TLS trust (a context of its own CAs for tests); `sleep` waits between
    attempts (tests pass one that records the delays).
    """

    def __init__(
        self,
        targets: TargetPolicy,
        retry: RetryPolicy | None = None,
        *,
        verify: ssl.SSLContext | bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.targets = targets
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        # No proxies from the environment (the connection goes to the checked address), no
        # redirects, no kept connections (a connection verified for one name must not carry a
        # request for another name at the same address), no cookies.
        self._client = httpx.AsyncClient(
            verify=verify,
            trust_env=False,
            follow_redirects=False,
            timeout=self.retry.timeout,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=0),
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def deliver(
        self, url: str, body: bytes, *, secrets: Sequence[str], request_id: str
    ) -> Outcome:
        """Attempts until one is delivered, the target is refused, or the attempts run out."""
        attempts: list[Attempt] = []
        for number in range(1, self.retry.attempts + 1):
            attempt = await self.attempt(
                url, body, secrets=secrets, request_id=request_id, number=number
            )
            attempts.append(attempt)
            if attempt.delivered or attempt.final:
                break
            if number < self.retry.attempts:
                await self._sleep(self.retry.delay_after(number))
        outcome = Outcome(tuple(attempts))
        log.info("webhook of request %s: %s", request_id, outcome.summary())
        return outcome

    async def attempt(
        self,
        url: str,
        body: bytes,
        *,
        secrets: Sequence[str],
        request_id: str,
        number: int = 1,
    ) -> Attempt:
        """One attempt: check the target (resolving its name), then POST to a checked address.
        For a caller that schedules attempts itself (across restarts), `deliver` otherwise."""
        headers = {
            "Content-Type": "application/json",
            REQUEST_ID_HEADER: request_id,
            SIGNATURE_HEADER: signature_header(body, secrets),
        }
        timeout = self.retry.timeout
        try:
            async with asyncio.timeout(timeout):
                checked = await resolve(url, self.targets)
                return await self._post(checked, body, headers, number)
        except TargetRefused as exc:
            return Attempt(number, False, error=exc.message, final=True)
        except TargetUnresolvable as exc:
            return Attempt(number, False, error=str(exc))
        except TimeoutError:
            return Attempt(number, False, error=f"no answer within {timeout:g} s")

    async def _post(
        self, checked: CheckedTarget, body: bytes, headers: dict[str, str], number: int
    ) -> Attempt:
        target = checked.target
        # The Host header and TLS (SNI, the certificate's name) are about the name; the
        # connection goes to the address.
        headers = {**headers, "Host": target.host_header}
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        error = "no address to connect to"
        for address in checked.addresses:
            try:
                async with self._client.stream(
                    "POST",
                    checked.url_for(address),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    status = response.status_code
            except httpx.ConnectError as exc:
                # Another address of the name may answer (IPv6 and IPv4, several records).
                error = f"cannot connect to {target.host_header} ({address}): {_text(exc)}"
                continue
            except httpx.TimeoutException:
                return Attempt(number, False, error=f"no answer within {self.retry.timeout:g} s")
            except httpx.HTTPError as exc:
                return Attempt(number, False, error=f"{target.host_header}: {_text(exc)}")
            if 200 <= status < 300:
                return Attempt(number, True, status=status)
            note = " (a redirect: webhooks do not follow redirects)" if 300 <= status < 400 else ""
            return Attempt(number, False, status=status, error=f"answered {status}{note}")
        return Attempt(number, False, error=error)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
