"""A chainlet's image settings, assets and options at deploy: each is honoured (and kept on the
chainlet row for the build and the replicas) or refused with a 400 naming the chainlet and the
field. What is honoured with a difference comes back as a warning for the push output.

The table of what each setting does per runtime is in docs/local-runtime.md and docs/ray.md.
"""

from __future__ import annotations

import importlib.metadata
import posixpath
import re
from typing import Any

from chainyard.domain.errors import Invalid
from chainyard.interpreters import Interpreters
from chainyard.schemas import ChainletManifest

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Debian package names (policy 5.6.1), with an optional :arch or =version.
_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+:~-]+)?$")
CODE = "UNSUPPORTED_CHAINLET_SETTING"


def _refuse(chainlet: str, field: str, why: str) -> Invalid:
    return Invalid(f"chainlet '{chainlet}': {field}: {why}", code=CODE)


def _inside_archive(chainlet: str, field: str, path: str) -> str:
    norm = posixpath.normpath(path)
    if path.startswith("/") or norm == ".." or norm.startswith("../"):
        raise _refuse(
            chainlet,
            field,
            f"{path!r} lies outside the chain's directory, which is all that `chainyard push` "
            "uploads: move it inside",
        )
    return norm


def check(c: ChainletManifest, interpreters: Interpreters) -> tuple[dict[str, Any], list[str]]:
    """The settings to keep for the chainlet, and the push warnings; raises `Invalid` (400)
    for a setting chainyard cannot honour."""
    name = c.name
    if c.cached:
        raise _refuse(
            name,
            "Assets.cached",
            "Hugging Face model caching is not supported by chainyard; download the model in "
            "the chainlet's __init__ (e.g. huggingface_hub.snapshot_download into "
            "context.data_dir) instead",
        )
    if c.weights:
        raise _refuse(
            name,
            "Assets.weights",
            "weight mirroring (Baseten's MDN) is not supported by chainyard; download the weights "
            "in the chainlet's __init__ instead",
        )
    if c.build_commands:
        raise _refuse(
            name,
            "RemoteConfig.build_commands",
            "chainyard builds no image and runs no shell commands at build; use "
            "apt_requirements (checked on the host) and pip requirements instead",
        )
    if c.enable_b10_tracing:
        raise _refuse(
            name,
            "ChainletOptions.enable_b10_tracing",
            "Baseten's internal trace collection (data for Baseten's own engineers) has no "
            "counterpart in chainyard; remove the option (per-chainlet request metrics are "
            "at /metrics)",
        )
    image: dict[str, Any] = {}
    warnings: list[str] = []
    if c.metadata is not None:
        image["metadata"] = c.metadata
    # Warnings the build log repeats from here (the runtime's build says which Python runs).
    later: list[str] = []

    base = c.base_image
    if base is not None:
        what = f"chainlet '{name}': DockerImage.base_image {base.name}"
        choice = interpreters.choose(base.python_version, what)
        if choice.refusal:
            raise Invalid(choice.refusal, code=CODE)
        if choice.warning:
            warnings.append(choice.warning)
        if base.kind == "custom":
            later.append(
                f"chainlet '{name}': DockerImage.base_image: the custom image {base.name} is not "
                "pulled (chainyard runs no images); only its Python version is used, and "
                "system packages it holds must be on the host (list them in apt_requirements "
                "to have the build check them)"
            )
            # How to pull the image and where its Python lies: without the image, neither has
            # a meaning here; say so rather than drop them quietly.
            unused = []
            if base.python_executable_path:
                unused.append(f"python_executable_path {base.python_executable_path!r}")
            if base.docker_auth:
                unused.append("docker_auth")
            if unused:
                later.append(
                    f"chainlet '{name}': CustomImage {' and '.join(unused)}: they describe the "
                    "image, which is not pulled; the chainlet runs on the interpreter chosen by "
                    "the image's Python version (the build log names it)"
                )
        if base.python_version:
            image["python_version"] = base.python_version
        image["base_image"] = base.name

    requirements_file = c.requirements_file
    if requirements_file is not None:
        if requirements_file.kind == "uv.lock":
            raise _refuse(
                name,
                "DockerImage.requirements_file",
                "uv.lock files are not supported; use a requirements.txt or a pyproject.toml "
                "([project].dependencies)",
            )
        folder = "."
        if requirements_file.path is not None:
            path = _inside_archive(name, "DockerImage.requirements_file", requirements_file.path)
            folder = posixpath.dirname(path) or "."
        image["requirements_file"] = {
            "dir": folder,
            "requirements": list(requirements_file.requirements),
        }

    if c.apt_requirements:
        bad = [p for p in c.apt_requirements if not _APT_NAME.match(p)]
        if bad:
            raise _refuse(name, "DockerImage.apt_requirements", f"not package names: {bad}")
        image["apt"] = sorted(set(c.apt_requirements))

    if c.data_dir is not None:
        image["data_dir"] = _inside_archive(name, "DockerImage.data_dir", c.data_dir)
    if c.external_package_dirs:
        image["package_dirs"] = [
            _inside_archive(name, "DockerImage.external_package_dirs", p)
            for p in c.external_package_dirs
        ]

    override = c.truss_server_version_override
    if override:
        ours = importlib.metadata.version("truss")
        if override != ours:
            later.append(
                f"chainlet '{name}': DockerImage.truss_server_version_override {override}: "
                f"chainyard serves chainlets with its own server and truss {ours}"
            )

    if c.env_variables:
        bad = [k for k in c.env_variables if not _ENV_NAME.match(k)]
        if bad:
            raise _refuse(name, "ChainletOptions.env_variables", f"invalid names: {bad}")
        image["env"] = dict(c.env_variables)

    if c.external_data:
        items = []
        for item in c.external_data:
            field = "Assets.external_data"
            if item.backend != "http_public" or not item.url.startswith(("http://", "https://")):
                raise _refuse(
                    name, field, f"{item.url!r}: only public http(s) URLs can be downloaded"
                )
            local = posixpath.normpath(item.local_data_path)
            if (
                item.local_data_path.startswith("/")
                or local in (".", "..")
                or local.startswith("../")
            ):
                raise _refuse(
                    name,
                    field,
                    f"local_data_path {item.local_data_path!r} must be a path inside the data dir",
                )
            items.append({"url": item.url, "path": local})
        image["external_data"] = items
    if later:
        image["warnings"] = later
    return image, warnings + later
