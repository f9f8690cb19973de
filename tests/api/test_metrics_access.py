"""/metrics is Prometheus text, and only keys that may manage or export metrics read it."""

from __future__ import annotations

import pytest

from chainyard.services import api_keys
from tests.support.server import Api


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def test_metrics_need_a_suitable_key(api: Api) -> None:
    ok = api.get("/metrics")
    assert ok.status_code == 200
    assert "chainyard_reconciler_tick_seconds" in ok.text
    invoke = api_keys.admin_create_key(api.core, "default", "WORKSPACE_INVOKE")
    assert api.get("/metrics", key=invoke).status_code == 403
    exporter = api_keys.admin_create_key(api.core, "default", "WORKSPACE_EXPORT_METRICS")
    assert api.get("/metrics", key=exporter).status_code == 200
    assert api.client.get("/metrics").status_code == 401
