"""Webhook delivery against a real receiver on loopback (private targets allowed, as in every
test): the signed POST, retries with backoff, the outcome, refused targets, and a connection to
the checked address that keeps the name for Host and TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chainyard.webhooks import payload, signing
from chainyard.webhooks.delivery import RetryPolicy, Sender
from chainyard.webhooks.targets import Resolver, TargetPolicy
from tests.support.webhook_receiver import HANG, Receiver, free_port

SECRET = "whsec_AbCdEf123456GhIjKlMnOpQrStUvWxYz12345678"
BODY = payload.encode(
    payload.result("req1", chain_id="chain1", deployment_id="dep1", data={"answer": 42})
)
ALLOWED = TargetPolicy(allow_private=True)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


class Delays:
    """Stands in for asyncio.sleep between attempts: records the delays, waits for none."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


def _sender(
    policy: TargetPolicy = ALLOWED, retry: RetryPolicy | None = None, **kw: Any
) -> tuple[Sender, Delays]:
    delays = Delays()
    return Sender(policy, retry or RetryPolicy(), sleep=delays, **kw), delays


def test_a_delivery_is_a_signed_post_of_the_body() -> None:
    async def scenario() -> None:
        sender, delays = _sender()
        async with Receiver() as receiver, sender:
            outcome = await sender.deliver(
                receiver.url("/hook?team=a"), BODY, secrets=[SECRET], request_id="req1"
            )
        assert outcome.delivered and outcome.summary() == "delivered (1 attempt)"
        assert delays.seen == []
        [got] = receiver.received
        assert got.path == "/hook?team=a"
        assert got.body == BODY
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-baseten-request-id"] == "req1"
        assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
        assert "cookie" not in got.headers
        assert signing.verify(got.body, got.headers["x-baseten-signature"], [SECRET])
        assert got.headers["x-baseten-signature"] == f"v1={signing.sign(BODY, SECRET)}"

    run(scenario)


def test_a_receiver_failing_twice_then_answering_gets_three_attempts() -> None:
    async def scenario() -> None:
        sender, delays = _sender()
        async with Receiver(script=[500, 503]) as receiver, sender:
            outcome = await sender.deliver(
                receiver.url(), BODY, secrets=[SECRET], request_id="req1"
            )
        assert outcome.delivered
        assert [(a.number, a.status, a.delivered) for a in outcome.attempts] == [
            (1, 500, False),
            (2, 503, False),
            (3, 200, True),
        ]
        assert len(receiver.received) == 3
        assert {r.body for r in receiver.received} == {BODY}
        # Exponential backoff between attempts: 2 s, then 4 s.
        assert delays.seen == [2.0, 4.0]

    run(scenario)


def test_a_receiver_that_always_fails_ends_failed_with_the_last_error() -> None:
    async def scenario() -> None:
        sender, delays = _sender(retry=RetryPolicy(attempts=5, max_delay=10.0))
        async with Receiver(then=500) as receiver, sender:
            outcome = await sender.deliver(
                receiver.url(), BODY, secrets=[SECRET], request_id="req1"
            )
        assert not outcome.delivered
        assert len(outcome.attempts) == 5 == len(receiver.received)
        assert outcome.last_error == "answered 500"
        assert outcome.summary() == "failed after 5 attempts: answered 500"
        assert delays.seen == [2.0, 4.0, 8.0, 10.0]

    run(scenario)


def test_timeouts_refused_connections_and_redirects_are_retried() -> None:
    async def scenario() -> None:
        retry = RetryPolicy(attempts=3, timeout=0.5)
        sender, _ = _sender(retry=retry)
        async with Receiver(script=[HANG, 302]) as receiver, sender:
            outcome = await sender.deliver(
                receiver.url(), BODY, secrets=[SECRET], request_id="req1"
            )
            assert outcome.delivered
            assert [a.error for a in outcome.attempts] == [
                "no answer within 0.5 s",
                "answered 302 (a redirect: webhooks do not follow redirects)",
                None,
            ]
            # The redirect's target was never asked.
            assert [r.path for r in receiver.received] == ["/hook"] * 3

            refused = await sender.deliver(
                f"http://127.0.0.1:{free_port()}/hook", BODY, secrets=[SECRET], request_id="r"
            )
        assert not refused.delivered and len(refused.attempts) == 3
        assert refused.last_error is not None
        assert refused.last_error.startswith("cannot connect to 127.0.0.1:")

    run(scenario)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
        ("http://127.0.0.1:{port}/hook", "https only"),
        ("https://10.0.0.8/hook", "10.0.0.8 is a private address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://[::1]:{port}/hook", "::1 is a loopback address"),
        ("https://hooks.example.test:{port}/hook", "resolves to 127.0.0.1, a loopback address"),
    ],
)
def test_refused_targets_get_one_attempt_and_a_clear_reason(url: str, why: str) -> None:
    async def scenario() -> None:
        policy = TargetPolicy(resolver=_names({"hooks.example.test": "127.0.0.1"}))
        sender, delays = _sender(policy)
        async with Receiver() as receiver, sender:
            outcome = await sender.deliver(
                url.format(port=receiver.port), BODY, secrets=[SECRET], request_id="req1"
            )
        assert not outcome.delivered
        [attempt] = outcome.attempts
        assert attempt.final and attempt.status is None
        assert why in (outcome.last_error or ""), outcome.last_error
        assert "--allow-private-webhooks" in (outcome.last_error or "")
        assert receiver.received == [] and delays.seen == []

    run(scenario)


def _names(table: dict[str, str], calls: list[str] | None = None) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return [table[host]]

    return resolve


def _certificate(tmp: pathlib.Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name`: the receiver's TLS context, and a client context
    that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


def test_https_goes_to_the_checked_address_with_the_name_for_host_and_tls(
    tmp_path: pathlib.Path,
) -> None:
    """`hooks.example.test` exists only in the test's resolver: reaching the receiver proves the
    connection went to the address resolved and checked, not to a second resolution; TLS
    verified the receiver's certificate for the name."""
    server_tls, client_tls = _certificate(tmp_path, "hooks.example.test")

    async def scenario() -> None:
        calls: list[str] = []
        policy = TargetPolicy(
            allow_private=True, resolver=_names({"hooks.example.test": "127.0.0.1"}, calls)
        )
        sender, _ = _sender(policy, RetryPolicy(attempts=2), verify=client_tls)
        async with Receiver(ssl_context=server_tls) as receiver, sender:
            url = receiver.url("/hook", host="hooks.example.test")
            outcome = await sender.deliver(url, BODY, secrets=[SECRET], request_id="req1")
            assert outcome.delivered, outcome.summary()
            assert calls == ["hooks.example.test"]
            [got] = receiver.received
            assert got.headers["host"] == f"hooks.example.test:{receiver.port}"
            assert signing.verify(got.body, got.headers["x-baseten-signature"], [SECRET])

            # A certificate for another name fails the attempt (and is retried): TLS checks
            # the name, not the address connected to.
            wrong = TargetPolicy(
                allow_private=True, resolver=_names({"other.example.test": "127.0.0.1"})
            )
            strict, _ = _sender(wrong, RetryPolicy(attempts=2), verify=client_tls)
            async with strict:
                failed = await strict.deliver(
                    receiver.url("/hook", host="other.example.test"),
                    BODY,
                    secrets=[SECRET],
                    request_id="req1",
                )
        assert not failed.delivered and len(failed.attempts) == 2
        assert "certificate" in (failed.last_error or "").lower(), failed.last_error
        assert len(receiver.received) == 1

    run(scenario)


def test_a_name_is_resolved_and_checked_again_for_each_attempt() -> None:
    """DNS may change between attempts: each attempt resolves once and checks what it got."""

    async def scenario() -> None:
        calls: list[str] = []
        policy = TargetPolicy(
            allow_private=True, resolver=_names({"hooks.example.test": "127.0.0.1"}, calls)
        )
        sender, _ = _sender(policy)
        async with Receiver(script=[500, 500]) as receiver, sender:
            outcome = await sender.deliver(
                receiver.url(host="hooks.example.test"), BODY, secrets=[SECRET], request_id="r"
            )
        assert outcome.delivered and len(outcome.attempts) == 3
        assert calls == ["hooks.example.test"] * 3

    run(scenario)


def test_retry_policy_delays() -> None:
    policy = RetryPolicy()
    assert [policy.delay_after(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.attempts == 4 and policy.timeout == 10.0
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
