"""The packages truss's own serving image always provides (truss's
`templates/server/requirements.txt`, truss 0.18.36): a chain that imports one of them without
listing it works on Baseten, so it must work here too.

chainyard depends on all of them (pyproject.toml), so a server installed with `make install` or
`pip install chainyard` has them and its chainlets inherit them (chainlet environments layer on
the server's). A build on a server environment that lacks some (installed otherwise) says so in
its log, naming them. Bounds are truss's lower bounds, and numpy's upper bound (<2: a chain
written against numpy 1's API works on Baseten). truss's other upper bounds and exact pins
(fastapi<0.125, msgpack==1.1.0) are not copied, since chainyard's own stack needs newer releases.
"""

from __future__ import annotations

BASELINE: tuple[str, ...] = (
    "aiocontextvars>=0.2.2",
    "aiofiles>=24.1.0",
    "aiohttp>=3.10.11",
    "cython>=3.0.5",
    "fastapi>=0.114",
    "joblib>=1.2.0",
    "loguru>=0.7.2",
    "msgpack>=1.1.0",
    "msgpack-numpy>=0.4.8",
    "numpy>=1.23.5,<2",
    "opentelemetry-api>=1.25.0",
    "opentelemetry-exporter-otlp>=1.25.0",
    "opentelemetry-sdk>=1.25.0",
    "prometheus-client>=0.21.1",
    "psutil>=5.9.4",
    "python-json-logger>=2.0.2",
    "pyyaml>=6.0.0",
    "requests>=2.31.0",
    "truss-transfer>=0.0.40",
    "uvicorn>=0.24.0",
    "uvloop>=0.19.0",
    "websockets>=10.0",
)
