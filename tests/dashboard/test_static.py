"""The dashboard's page and files are served, with their headers, beside an untouched API."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest

from chainyard.api.routes.dashboard import STATIC_DIR
from tests.support.server import Api

REPO = pathlib.Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"""^\s*import\s.*?from\s+["'](\.{1,2}/[^"']+)["']""", re.MULTILINE)


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def test_the_page_is_at_the_root(api: Api) -> None:
    response = api.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert 'src="static/js/main.js"' in response.text
    assert api.client.head("/").status_code == 200


def test_files_are_served_with_types_and_revalidation(api: Api) -> None:
    script = api.client.get("/static/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"
    assert script.headers["x-content-type-options"] == "nosniff"
    style = api.client.get("/static/css/app.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert api.client.get("/static/js/nope.js").status_code == 404
    assert api.client.get("/static/../api/app.py").status_code == 404
    assert api.client.get("/static/%2e%2e/%2e%2e/api/app.py").status_code == 404


def test_every_module_the_page_imports_is_shipped(api: Api) -> None:
    modules = sorted(STATIC_DIR.rglob("*.js"))
    assert len(modules) >= 8
    for module in modules:
        for target in IMPORT.findall(module.read_text(encoding="utf-8")):
            resolved = (module.parent / target).resolve()
            assert resolved.is_file(), f"{module.name} imports missing {target}"
            served = api.client.get(f"/static/{resolved.relative_to(STATIC_DIR).as_posix()}")
            assert served.status_code == 200


def test_no_inline_script_or_style_that_the_policy_would_block() -> None:
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "<style" not in page
    assert " style=" not in page
    for module in STATIC_DIR.rglob("*.js"):
        text = module.read_text(encoding="utf-8")
        # Text goes into the page as text nodes (dom.js), never as markup.
        assert "innerHTML" not in text, module.name
        assert "insertAdjacentHTML" not in text, module.name


def test_the_api_is_not_shadowed(api: Api) -> None:
    assert api.client.get("/v1/chains").status_code == 401
    assert api.get("/v1/chains").status_code == 200
    assert api.client.get("/healthz").json()["status"] == "ok"
    assert api.client.get("/metrics").status_code == 401
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/static") for p in paths)


def test_the_package_data_globs_cover_every_file() -> None:
    # What a wheel ships is what pyproject's package-data globs match under the package directory.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["chainyard"]
    package = STATIC_DIR.parents[1]
    shipped = {p for g in globs for p in package.glob(g) if p.is_file()}
    files = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert files
    assert files <= shipped, sorted(str(p) for p in files - shipped)
