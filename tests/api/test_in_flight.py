"""The server tells its loops when requests are being handled (api/in_flight.py): their paced
passes rest only then."""

from __future__ import annotations

import pathlib

from fastapi.testclient import TestClient

from chainyard.server import create_app
from tests.support.server import fast_config


def test_requests_waiting_is_true_while_a_request_is_handled(tmp_path: pathlib.Path) -> None:
    config = fast_config(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/c.db")
    app = create_app(config)
    core = app.state.core

    @app.get("/_probe")
    def probe() -> dict[str, bool]:
        return {"waiting": core.requests_waiting()}

    with TestClient(app) as client:
        assert client.get("/_probe").json() == {"waiting": True}
        assert client.get("/healthz").status_code == 200
        assert core.requests_waiting() is False
        # A request that fails still ends its count.
        assert client.get("/v1/chains").status_code == 401
        assert core.requests_waiting() is False
