"""Webhook targets: https to public addresses only, unless the operator allows private ones."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from chainyard.config import ServerConfig
from chainyard.webhooks import targets
from chainyard.webhooks.targets import TargetPolicy, TargetRefused, TargetUnresolvable

STRICT = TargetPolicy()
OPEN = TargetPolicy(allow_private=True)


def _resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> targets.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"no such name {host}")
        return table[host]

    return resolve


def _refusal(url: str, policy: TargetPolicy = STRICT) -> str:
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(targets.resolve(url, policy))
    assert refused.value.code == "INVALID_WEBHOOK_ENDPOINT"
    return refused.value.message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("https://127.1/hook", "127.0.0.1 is a loopback address"),
        ("https://2130706433/hook", "127.0.0.1 is a loopback address"),
        ("https://0x7f.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("https://[::1]:8443/hook", "::1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", "a loopback address (it carries 127.0.0.1)"),
        ("https://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("https://172.16.0.9/hook", "172.16.0.9 is a private address"),
        ("https://192.168.1.1/hook", "192.168.1.1 is a private address"),
        ("https://[fd00::1]/hook", "fd00::1 is a private address"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("https://[fe80::1]/hook", "fe80::1 is a link-local address"),
        ("https://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
        ("https://[ff02::1]/hook", "ff02::1 is a multicast address"),
        ("https://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
        ("https://[::]/hook", ":: is an unspecified address"),
        ("https://240.0.0.1/hook", "240.0.0.1 is a private address"),
        ("https://100.64.0.1/hook", "100.64.0.1 is not a public address"),
        ("https://[64:ff9b::a00:1]/hook", "a private address (it carries 10.0.0.1)"),
        ("https://localhost:8080/hook", "localhost is this machine"),
        ("https://api.localhost/hook", "api.localhost is this machine"),
    ],
)
def test_internal_addresses_are_refused_with_the_reason(url: str, why: str) -> None:
    message = _refusal(url)
    assert why in message, message
    assert "--allow-private-webhooks" in message
    # The checks without resolution (at enqueue) refuse them already.
    with pytest.raises(TargetRefused):
        targets.parse(url, STRICT)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/hook", "https only"),
        ("ftp://example.com/hook", "https only"),
        ("https://user:pw@example.com/hook", "may not hold credentials"),
        ("https://example.com:0/hook", "port 0 is out of range"),
        ("https://example.com:70000/hook", "port 70000 is out of range"),
        ("https://exa mple.com/hook", "spaces or control characters"),
        ("https://exa%20mple.com/hook", "is not a host name"),
        ("https:///hook", "is not a host name"),
        ("not a url", "spaces"),
        ("https://example.com/" + "x" * 2100, "longer than 2048"),
    ],
)
def test_malformed_targets_are_refused(url: str, why: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        targets.parse(url, STRICT)
    assert why in refused.value.message


def test_a_name_resolving_inside_is_refused_and_resolved_once() -> None:
    calls: list[str] = []
    table = {
        "loopback.example.test": ["127.0.0.1"],
        "mixed.example.test": ["93.184.215.14", "10.0.0.7"],
        "meta.example.test": ["169.254.169.254"],
        "six.example.test": ["::1"],
        "public.example.test": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    }
    policy = TargetPolicy(resolver=_resolver(table, calls))
    message = _refusal("https://loopback.example.test/hook", policy)
    assert "loopback.example.test resolves to 127.0.0.1, a loopback address" in message
    # One address inside is enough: a name that also points inside is not trusted.
    assert "resolves to 10.0.0.7, a private address" in _refusal(
        "https://mixed.example.test/", policy
    )
    assert "a link-local address" in _refusal("https://meta.example.test/", policy)
    assert "resolves to ::1, a loopback address" in _refusal("https://six.example.test/", policy)

    calls.clear()
    checked = asyncio.run(targets.resolve("https://public.example.test:8443/a?b=1", policy))
    assert calls == ["public.example.test"]
    assert checked.addresses == (
        ipaddress.ip_address("93.184.215.14"),
        ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )
    assert str(checked.url_for(checked.addresses[0])) == "https://93.184.215.14:8443/a?b=1"
    assert str(checked.url_for(checked.addresses[1])).startswith("https://[2606:2800:")
    assert checked.target.host_header == "public.example.test:8443"

    with pytest.raises(TargetUnresolvable, match="does not resolve"):
        asyncio.run(targets.resolve("https://nowhere.example.test/", policy))


def test_the_servers_own_addresses_are_refused() -> None:
    own = targets.own_addresses("203.0.113.9")
    assert ipaddress.ip_address("127.0.0.1") in own
    assert ipaddress.ip_address("203.0.113.9") in own
    policy = TargetPolicy(own=frozenset({ipaddress.ip_address("93.184.215.14")}))
    message = _refusal("https://93.184.215.14/hook", policy)
    assert "one of this server's own addresses" in message
    named = TargetPolicy(own=policy.own, resolver=_resolver({"me.example.test": ["93.184.215.14"]}))
    assert "this server's own addresses" in _refusal("https://me.example.test/", named)


def test_public_targets_pass() -> None:
    for url, host_header in (
        ("https://93.184.215.14/hook", "93.184.215.14"),
        (
            "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/",
            "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443",
        ),
        ("https://Example.COM/hook#frag", "example.com"),
        ("https://bücher.example/hook", "xn--bcher-kva.example"),
    ):
        target = targets.parse(url, STRICT)
        assert target.host_header == host_header
        assert target.url.fragment == ""


def test_allowing_private_targets_allows_them_and_plain_http() -> None:
    for url in (
        "http://127.0.0.1:8080/hook",
        "https://10.0.0.1/hook",
        "http://localhost:9/hook",
        "https://[::1]/hook",
        "http://169.254.169.254/",
    ):
        targets.parse(url, OPEN)
    checked = asyncio.run(
        targets.resolve(
            "http://loopback.example.test:81/x",
            TargetPolicy(
                allow_private=True, resolver=_resolver({"loopback.example.test": ["127.0.0.1"]})
            ),
        )
    )
    assert checked.addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert checked.target.host_header == "loopback.example.test:81"
    # Credentials and odd schemes stay refused.
    with pytest.raises(TargetRefused):
        targets.parse("http://u:p@127.0.0.1/", OPEN)
    with pytest.raises(TargetRefused):
        targets.parse("file:///etc/passwd", OPEN)


def test_the_operator_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINYARD_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    assert ServerConfig.from_env().allow_private_webhooks is False
    assert ServerConfig.from_env(allow_private_webhooks=True).allow_private_webhooks is True
    monkeypatch.setenv("CHAINYARD_ALLOW_PRIVATE_WEBHOOKS", "1")
    assert ServerConfig.from_env().allow_private_webhooks is True
    monkeypatch.setenv("CHAINYARD_ALLOW_PRIVATE_WEBHOOKS", "0")
    assert ServerConfig.from_env().allow_private_webhooks is False
