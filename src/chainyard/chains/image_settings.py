"""What `chainyard push` reads from a chainlet's `remote_config` beyond compute and secrets: the
image settings, the assets and the options that change how it runs.

Everything set is sent in the manifest, also what the server refuses: the server decides, and a
refusal is a 400 naming the chainlet and the field, never a setting left behind on the client.
Paths (truss's `AbsPath`) are sent relative to the chain's directory, which is what is uploaded.
"""

from __future__ import annotations

import os
import pathlib
import re
import tomllib
from typing import Any


class ImageSettingsError(Exception):
    """A setting that cannot even be read (a requirements file that does not parse)."""


# A python:3.12-slim style tag names the image's Python.
_TAG_PYTHON = re.compile(r"(?:^|[:/-])(?:python|py)[-:]?(3)\.?(\d{1,2})(?:\D|$)")
_BASETEN_PYTHON = re.compile(r"^py(3)(\d{1,2})$")


def describe(remote_config: Any, root: pathlib.Path) -> dict[str, Any]:
    """The manifest fields for one chainlet's settings; only those that are set."""
    image = remote_config.docker_image
    assets = remote_config.get_asset_spec()
    compute = remote_config.get_compute_spec()
    out: dict[str, Any] = {"base_image": _base_image(image.base_image)}
    # Deprecated `pip_requirements_file` is folded into `requirements_file` by truss itself.
    if image.requirements_file is not None:
        out["requirements_file"] = _requirements_file(image.requirements_file, root)
    if image.apt_requirements:
        out["apt_requirements"] = list(image.apt_requirements)
    if image.data_dir is not None:
        out["data_dir"] = _relative(image.data_dir, root)
    if image.external_package_dirs:
        out["external_package_dirs"] = [_relative(p, root) for p in image.external_package_dirs]
    if image.truss_server_version_override:
        out["truss_server_version_override"] = str(image.truss_server_version_override)
    env = dict(remote_config.options.env_variables or {})
    if env:
        out["env_variables"] = {str(k): str(v) for k, v in env.items()}
    if assets.external_data:
        out["external_data"] = [
            {
                "url": str(item.url),
                "local_data_path": str(item.local_data_path),
                "backend": str(getattr(item.backend, "value", item.backend)),
            }
            for item in assets.external_data
        ]
    if assets.cached:
        out["cached"] = [item.model_dump(mode="json") for item in assets.cached]
    if assets.weights:
        out["weights"] = [item.model_dump(mode="json") for item in assets.weights]
    if getattr(remote_config, "build_commands", None):
        out["build_commands"] = list(remote_config.build_commands)
    if compute.instance_type:
        out["instance_type_id"] = str(compute.instance_type)
    options = remote_config.options
    if options.metadata is not None:
        out["metadata"] = options.metadata
    if options.enable_b10_tracing:
        out["enable_b10_tracing"] = True
    return out


def _base_image(base: Any) -> dict[str, Any]:
    value = getattr(base, "value", None)
    if isinstance(value, str):  # BasetenImage.PY311 and friends
        match = _BASETEN_PYTHON.match(value)
        version = f"{match.group(1)}.{match.group(2)}" if match else None
        return {"kind": "baseten", "name": value, "python_version": version}
    image = str(base.image)
    match = _TAG_PYTHON.search(image.rsplit("/", 1)[-1])
    return {
        "kind": "custom",
        "name": image,
        "python_version": f"{match.group(1)}.{match.group(2)}" if match else None,
        "python_executable_path": base.python_executable_path,
        "docker_auth": base.docker_auth is not None,
    }


def _relative(path: Any, root: pathlib.Path) -> str:
    """The path relative to the chain's directory ('../x' when outside: the server refuses)."""
    absolute = pathlib.Path(path.abs_path)
    return pathlib.PurePath(os.path.relpath(absolute, root)).as_posix()


def _requirements_file(path: Any, root: pathlib.Path) -> dict[str, Any]:
    file = pathlib.Path(path.abs_path)
    name = file.name
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImageSettingsError(f"cannot read requirements_file {file}: {exc}") from exc
    relative = _relative(path, root)
    inside = not relative.startswith("../")
    if name == "uv.lock":
        return {"path": relative if inside else None, "kind": "uv.lock", "requirements": []}
    if name == "pyproject.toml":
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise ImageSettingsError(f"requirements_file {file} is not valid TOML: {exc}") from exc
        deps = [str(d) for d in project.get("dependencies", [])]
        return {
            "path": relative if inside else None,
            "kind": "pyproject.toml",
            "requirements": deps,
        }
    return {
        "path": relative if inside else None,
        "kind": "requirements.txt",
        "requirements": _requirement_lines(file, text, set()),
    }


_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)(.+)$")


def _requirement_lines(file: pathlib.Path, text: str, seen: set[pathlib.Path]) -> list[str]:
    """The file's requirement lines, with nested `-r other.txt` files inlined: they are resolved
    from the including file's directory, which the server's copy of the lines no longer has."""
    seen.add(file.resolve())
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = _INCLUDE.match(line)
        if include is None:
            out.append(line)
            continue
        nested = (file.parent / include.group(1).strip()).resolve()
        if nested in seen:
            continue
        try:
            nested_text = nested.read_text(encoding="utf-8")
        except OSError as exc:
            raise ImageSettingsError(f"cannot read {nested} (included by {file}): {exc}") from exc
        out.extend(_requirement_lines(nested, nested_text, seen))
    return out
