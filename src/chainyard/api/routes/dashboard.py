"""The dashboard: a page at `/` and its scripts and styles under `/static/`.

The files are plain ES modules and CSS shipped in the package (`chainyard/web/static`), so nothing
is built on the user's machine. The page holds no data of its own: it calls the REST API with the
key the user signs in with, so it sees exactly what that key may see.
"""

from __future__ import annotations

import importlib.resources
import pathlib
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

# Located by name rather than imported: the web folder holds no Python.
STATIC_DIR = pathlib.Path(str(importlib.resources.files("chainyard"))) / "web" / "static"

# Everything comes from this server; no inline script or style may run, so a chain or log line
# that slipped into the page as markup could not execute.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _StaticFiles(StaticFiles):
    """Static files that browsers revalidate (cheap, with the ETag) so that a server upgrade is
    never met with yesterday's scripts."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@router.api_route("/", methods=["GET", "HEAD"])
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS, media_type="text/html")


def install(app: FastAPI) -> None:
    """Adds the page and its static files to `app`."""
    app.include_router(router)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
