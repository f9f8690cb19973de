"""Binary (msgpack) end to end (issue 15, item 5): numpy arrays between chainlets over
`use_binary=True` RPCs (async and sync stubs), msgpack request bodies from a client as truss sends
them, answered in msgpack; JSON still works on the same chain."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import msgpack
import pytest

from tests.e2e.conftest import LiveServer

BINARY = pathlib.Path(__file__).parent / "chains" / "binary.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def binary_chain(live_server: LiveServer) -> dict[str, Any]:
    # The chainlets need numpy and msgpack-numpy: the first push builds their environment.
    result = live_server.push(BINARY, "--promote", "--wait", "--timeout", "900")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def _expected(width: int, height: int) -> int:
    return sum((255 - (i % 256)) // 2 for i in range(width * height))


def test_numpy_arrays_between_chainlets_and_msgpack_from_the_client(
    live_server: LiveServer, binary_chain: dict[str, Any]
) -> None:
    path = f"/chains/{binary_chain['chain_id']}/production/run_remote"
    note = bytes(range(256)) * 4  # not UTF-8: msgpack carries it as it is, no base64
    request = {"label": "grey", "width": 40, "height": 30, "note": note}
    with live_server.client() as client:
        # As truss's stubs and clients send msgpack: application/octet-stream both ways.
        response = client.post(
            path,
            content=msgpack.packb(request),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/octet-stream"
        summary = msgpack.unpackb(response.content)
        assert summary == {
            "label": "grey+inverted+halved",
            "shape": [30, 40],
            "dtype": "uint8",
            "total": _expected(40, 30),
            "expected_total": _expected(40, 30),
            "note_length": 1024,
        }

        # The msgpack media type is accepted too, and answered in msgpack.
        other = client.post(
            path,
            content=msgpack.packb({**request, "width": 3, "height": 2}),
            headers={"Content-Type": "application/msgpack"},
        )
        assert other.status_code == 200, other.text
        assert msgpack.unpackb(other.content)["total"] == _expected(3, 2)

        # JSON on the same chain: JSON back (the RPCs inside stay binary).
        as_json = client.post(path, json={**request, "note": "abc"})
        assert as_json.status_code == 200, as_json.text
        assert as_json.headers["content-type"].startswith("application/json")
        assert as_json.json()["total"] == _expected(40, 30)

        # A body that is not msgpack is the caller's mistake.
        broken = client.post(
            path, content=b"\xc1not msgpack", headers={"Content-Type": "application/octet-stream"}
        )
        assert broken.status_code == 400
        assert "not valid msgpack" in broken.json()["error"]
