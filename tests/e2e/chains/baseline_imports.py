"""A chainlet that imports, without listing them, the packages truss's serving image always
provides: it works on Baseten, so it must work here."""

import importlib

import truss_chains as chains

MODULES = [
    "aiocontextvars",
    "aiofiles",
    "aiohttp",
    "Cython",
    "fastapi",
    "joblib",
    "loguru",
    "msgpack",
    "msgpack_numpy",
    "numpy",
    "opentelemetry.exporter.otlp",
    "opentelemetry.sdk",
    "prometheus_client",
    "psutil",
    "pythonjsonlogger",
    "requests",
    "truss_transfer",
    "uvicorn",
    "uvloop",
    "websockets",
    "yaml",
]


class BaselineImports(chains.ChainletBase):
    def run_remote(self) -> list[str]:
        for name in MODULES:
            importlib.import_module(name)
        import msgpack
        import msgpack_numpy
        import numpy

        packed = msgpack.packb(numpy.arange(3), default=msgpack_numpy.encode)
        restored = msgpack.unpackb(packed, object_hook=msgpack_numpy.decode)
        return [*MODULES, str(restored.tolist())]
