"""Edge limits: a rate limit per API key and endpoint, and request body sizes."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest

from chainyard.api.limits import RateLimiter
from tests.support.server import Api, hello_manifest


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0])
    assert [limiter.take("k", "GET", "/x") for _ in range(5)] == [0.0] * 5
    wait = limiter.take("k", "GET", "/x")
    assert wait == pytest.approx(0.2)
    # Other keys and other routes have buckets of their own.
    assert limiter.take("other", "GET", "/x") == 0.0
    assert limiter.take("k", "POST", "/x") == 0.0
    now[0] += 0.2
    assert limiter.take("k", "GET", "/x") == 0.0


def test_past_the_limit_a_key_gets_429_with_retry_after(make_api: object) -> None:
    api: Api = make_api(rate_limit_per_second=20)  # type: ignore[operator]
    codes = [api.get("/v1/instance_types").status_code for _ in range(40)]
    assert codes[:20] == [200] * 20
    assert 429 in codes[20:]
    response = next(
        r for r in (api.get("/v1/instance_types") for _ in range(40)) if r.status_code == 429
    )
    body = response.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["retry_after"] > 0
    assert "error" in body
    assert int(response.headers["Retry-After"]) >= 1
    # Another endpoint, with the same key, is not affected.
    assert api.get("/v1/chains").status_code == 200


def test_a_refused_request_changes_nothing(make_api: object) -> None:
    api: Api = make_api(rate_limit_per_second=3)  # type: ignore[operator]
    names = [f"limited-{uuid.uuid4().hex[:6]}-{i}" for i in range(8)]
    codes = [api.post("/v1/chains/deploy", json=hello_manifest(name)).status_code for name in names]
    assert 429 in codes
    listed = {c["name"] for c in api.get("/v1/chains").json()["chains"]}
    for name, code in zip(names, codes, strict=True):
        assert (name in listed) == (code == 200), (name, code)


def test_rate_limit_zero_turns_it_off(make_api: object) -> None:
    api: Api = make_api(rate_limit_per_second=0)  # type: ignore[operator]
    assert {api.get("/v1/instance_types").status_code for _ in range(150)} == {200}


def test_an_oversized_body_is_413_before_anything_runs(make_api: object) -> None:
    api: Api = make_api(max_request_bytes=4096)  # type: ignore[operator]
    manifest = hello_manifest(f"big-{uuid.uuid4().hex[:6]}")
    manifest["padding"] = "x" * 10_000
    response = api.post("/v1/chains/deploy", json=manifest)
    # The deploy path allows archives; its JSON manifest is still limited to 1 MiB, and the
    # manifest forbids unknown fields.
    assert response.status_code == 400
    big = api.post("/v1/secrets", json={"name": "big", "value": "x" * 10_000})
    assert big.status_code == 413
    assert big.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert all(s["name"] != "big" for s in api.get("/v1/secrets").json()["secrets"])


def test_a_chunked_body_over_the_limit_is_413(make_api: object) -> None:
    api: Api = make_api(max_request_bytes=4096)  # type: ignore[operator]

    def chunks() -> object:
        for _ in range(10):
            yield b'{"name": "chunky", "value": "' + b"x" * 1000
        yield b'"}'

    response = api.client.post(
        "/v1/secrets",
        content=chunks(),  # type: ignore[arg-type]
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_archive_with_a_link_or_escape_is_refused(api_for_archives: Api) -> None:
    api = api_for_archives
    for member in (_symlink("chain.py", "/etc/passwd"), _file("../escape.py")):
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            tar.addfile(*member)
        manifest = hello_manifest(f"arch-{uuid.uuid4().hex[:6]}")
        manifest["source_file"] = "chain.py"
        import json

        response = api.client.post(
            "/v1/chains/deploy",
            headers=api.headers(),
            files={
                "manifest": (None, json.dumps(manifest)),
                "source": ("src.tar.gz", archive.getvalue(), "application/gzip"),
            },
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"]


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _file(name: str) -> tuple[tarfile.TarInfo, io.BytesIO]:
    data = b"print('hi')\n"
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


@pytest.fixture
def api_for_archives(make_api: object) -> Api:
    api: Api = make_api()  # type: ignore[operator]
    return api
