"""Input limits: names, archive file counts, unknown fields; and secret values never leave the
store in plain text except to the replicas that declared them."""

from __future__ import annotations

import io
import json
import logging
import tarfile
import uuid

import pytest

from chainyard import archives
from tests.support.server import Api, hello_manifest


@pytest.mark.parametrize(
    "name",
    ["", "x" * 300, "has space", "semi;colon", "../escape", "new\nline", "emoji-🙂"],
)
def test_bad_chain_names_are_400_and_create_nothing(api: Api, name: str) -> None:
    response = api.post("/v1/chains/deploy", json=hello_manifest(name))
    assert response.status_code == 400, response.text
    assert response.json()["code"]
    assert api.get("/v1/chains").json()["chains"] == []


@pytest.mark.parametrize("name", ["", "UPPER", "x" * 100, "with space", "-leading", "a/b"])
def test_bad_environment_names_are_400(api: Api, name: str) -> None:
    chain_id = api.deploy(hello_manifest(f"env-names-{uuid.uuid4().hex[:6]}"))["chain_id"]
    response = api.post(f"/v1/chains/{chain_id}/environments", json={"name": name})
    assert response.status_code == 400, response.text
    names = [
        e["name"] for e in api.get(f"/v1/chains/{chain_id}/environments").json()["environments"]
    ]
    assert names == ["production"]


def test_bad_chainlet_names_are_400(api: Api) -> None:
    manifest = hello_manifest(f"chainlet-names-{uuid.uuid4().hex[:6]}")
    manifest["chainlets"][1]["name"] = "Rand Int!"
    manifest["chainlets"][0]["dependencies"] = ["Rand Int!"]
    response = api.post("/v1/chains/deploy", json=manifest)
    assert response.status_code == 400, response.text


def test_unknown_fields_are_refused_where_the_spec_closes_the_object(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(f"closed-{uuid.uuid4().hex[:6]}"))["chain_id"]
    response = api.patch(
        f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
        json={
            "updates": [{"chainlet_name": "RandInt", "autoscaling_settings": {"max_replicas": 3}}]
        },
    )
    assert response.status_code == 400, response.text
    assert "max_replicas" in response.json()["error"]
    manifest = {**hello_manifest(f"closed2-{uuid.uuid4().hex[:6]}"), "surprise": 1}
    assert api.post("/v1/chains/deploy", json=manifest).status_code == 400


def test_an_archive_with_too_many_files_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_ENTRIES", 5)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for i in range(6):
            data = b"x = 1\n"
            info = tarfile.TarInfo(f"m{i}.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    manifest = {**hello_manifest(f"many-{uuid.uuid4().hex[:6]}"), "source_file": "m0.py"}
    response = api.client.post(
        "/v1/chains/deploy",
        headers=api.headers(),
        files={
            "manifest": (None, json.dumps(manifest)),
            "source": ("src.tar.gz", archive.getvalue(), "application/gzip"),
        },
    )
    assert response.status_code == 400, response.text
    assert "more than 5 entries" in response.json()["error"]
    assert api.get("/v1/chains").json()["chains"] == []


def test_secret_values_appear_in_no_response_error_or_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    value = f"sekrit-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    answers = [
        api.post("/v1/secrets", json={"name": "db_password", "value": value}),
        api.post("/v1/secrets", json={"name": "db_password", "value": value + "2"}),
        # Refused: a bad name, and a value of the wrong type; the errors must not echo it.
        api.post("/v1/secrets", json={"name": "bad name!", "value": value}),
        api.post("/v1/secrets", json={"name": "x", "value": [value]}),
        api.post("/v1/secrets", json={"name": "x" * 500, "value": value}),
        api.get("/v1/secrets"),
        api.delete("/v1/secrets/db_password"),
    ]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert all(400 <= a.status_code < 500 for a in answers[2:5])
    for answer in answers:
        assert value not in answer.text, answer.text
    audit_chain_free = caplog.text
    assert value not in audit_chain_free
