"""Webhook payloads and signatures as Baseten sends them."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from pydantic import BaseModel, JsonValue

from chainyard.services.webhook_secrets import new_secret
from chainyard.webhooks import payload, signing

SECRET_A = "whsec_AbCdEf123456GhIjKlMnOpQrStUvWxYz12345678"
SECRET_B = "whsec_0000000000111111111122222222223333333333"
BODY = b'{"request_id":"r1","data":{"x":1}}'


def test_new_secrets_have_baseten_form_and_differ() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert re.fullmatch(r"whsec_[A-Za-z0-9]{40}", secret)


def test_the_signature_is_the_hmac_sha256_of_the_whole_body() -> None:
    expected = hmac.new(SECRET_A.encode(), BODY, hashlib.sha256).hexdigest()
    assert signing.sign(BODY, SECRET_A) == expected
    assert signing.signature_header(BODY, [SECRET_A]) == f"v1={expected}"


def test_one_entry_per_secret_newest_first() -> None:
    header = signing.signature_header(BODY, [SECRET_B, SECRET_A])
    assert header == f"v1={signing.sign(BODY, SECRET_B)},v1={signing.sign(BODY, SECRET_A)}"
    assert signing.signatures(header) == [
        signing.sign(BODY, SECRET_B),
        signing.sign(BODY, SECRET_A),
    ]
    # Baseten's documented check: the first entry, with the newest secret.
    first = header.replace("v1=", "").split(",")[0]
    assert hmac.compare_digest(first, signing.sign(BODY, SECRET_B))


def test_verify_accepts_any_active_secret_and_nothing_else() -> None:
    header = signing.signature_header(BODY, [SECRET_B, SECRET_A])
    assert signing.verify(BODY, header, [SECRET_A])
    assert signing.verify(BODY, header, [SECRET_B])
    assert signing.verify(BODY, header, ["whsec_other", SECRET_A])
    assert not signing.verify(BODY, header, ["whsec_other"])
    assert not signing.verify(BODY + b" ", header, [SECRET_A, SECRET_B])
    assert not signing.verify(BODY, "", [SECRET_A])
    assert not signing.verify(BODY, f"v2={signing.sign(BODY, SECRET_A)}", [SECRET_A])
    assert signing.verify(BODY, f"v2=zz, v1={signing.sign(BODY, SECRET_A)}", [SECRET_A])


def test_every_webhook_is_signed() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signing.signature_header(BODY, [])


class _BasetenResult(BaseModel):
    """The payload as Baseten's sample receiver models it."""

    request_id: str
    chain_id: str
    deployment_id: str
    type: str
    time: dt.datetime
    data: JsonValue
    errors: list[dict[str, Any]]


@pytest.mark.parametrize("microsecond", [883423, 0])
def test_the_payload_has_basetens_fields_and_form(microsecond: int) -> None:
    when = dt.datetime(2024, 4, 30, 1, 1, 8, microsecond, tzinfo=dt.UTC)
    data = {"text": "héllo\u2028", "n": [1, 2.5, None, True]}
    body = payload.encode(
        payload.result("req1", chain_id="c1", deployment_id="d1", data=data, time=when)
    )
    parsed = json.loads(body)
    assert list(parsed) == [
        "request_id",
        "chain_id",
        "deployment_id",
        "type",
        "time",
        "data",
        "errors",
    ]
    assert parsed["type"] == "async_request_completed"
    assert parsed["time"].endswith("Z") and parsed["time"].startswith("2024-04-30T01:01:08")
    assert parsed["data"] == data and parsed["errors"] == []
    # Baseten's sample receiver signs its re-serialization of the parsed payload: the same bytes.
    assert _BasetenResult.model_validate_json(body).model_dump_json().encode() == body


def test_a_failed_request_has_errors_and_no_data() -> None:
    body = payload.result(
        "req2",
        chain_id="c1",
        deployment_id="d1",
        data={"partial": 1},
        errors=[{"code": "MODEL_PREDICT_ERROR", "message": "boom", "extra": "dropped"}],
    )
    assert body["data"] is None
    assert body["errors"] == [{"code": "MODEL_PREDICT_ERROR", "message": "boom"}]
    assert body["type"] == "async_request_completed"
    with pytest.raises(ValueError, match="aware"):
        payload.timestamp(dt.datetime(2024, 1, 1))
