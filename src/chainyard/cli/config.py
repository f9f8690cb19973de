"""Where the CLI finds its server, key and output format.

Precedence, highest first: command-line flags, environment variables (CHAINYARD_URL,
CHAINYARD_API_KEY, CHAINYARD_OUTPUT, CHAINYARD_PROFILE), the config file (~/.chainyard.toml, or
CHAINYARD_CONFIG), built-in defaults. The file holds top-level `url`, `api_key`, `output`, and
optional `[profiles.NAME]` tables that override them when the profile is selected (with
--profile, CHAINYARD_PROFILE, or `default_profile` in the file). With no key from any of these,
a server on this machine lends its initial admin key (`cli/local_server.py`).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Any

from chainyard.cli import local_server

DEFAULT_URL = "http://127.0.0.1:8080"
_KEYS = ("url", "api_key", "output")


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"


class ConfigError(Exception):
    """The configuration cannot be used (bad file, unknown profile, bad value)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    url: str
    api_key: str | None
    output: OutputFormat
    profile: str | None
    # For each setting, where its value came from ("flag", "env", "file", "default").
    sources: Mapping[str, str]


def config_path() -> pathlib.Path:
    override = os.environ.get("CHAINYARD_CONFIG")
    if override:
        return pathlib.Path(override).expanduser()
    return pathlib.Path.home() / ".chainyard.toml"


def _read_file(path: pathlib.Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _file_values(
    data: Mapping[str, Any], profile: str | None, path: pathlib.Path
) -> dict[str, Any]:
    values = {k: data[k] for k in _KEYS if k in data}
    if profile is None:
        return values
    profiles = data.get("profiles", {})
    if not isinstance(profiles, Mapping) or not isinstance(profiles.get(profile), Mapping):
        known = ", ".join(sorted(profiles)) if isinstance(profiles, Mapping) else ""
        raise ConfigError(
            f"no profile '{profile}' in {path}" + (f" (profiles: {known})" if known else "")
        )
    values.update({k: profiles[profile][k] for k in _KEYS if k in profiles[profile]})
    return values


def resolve(
    *,
    url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    output: OutputFormat | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The settings for one command, from its flags (None: not given) and what lies beyond."""
    env = os.environ if environ is None else environ
    path = config_path()
    data = _read_file(path)
    chosen_profile = profile or env.get("CHAINYARD_PROFILE") or data.get("default_profile")
    if chosen_profile is not None and not isinstance(chosen_profile, str):
        raise ConfigError(f"default_profile in {path} must be a string")
    from_file = _file_values(data, chosen_profile, path)

    flags = {"url": url, "api_key": api_key, "output": output}
    env_names = {
        "url": "CHAINYARD_URL",
        "api_key": "CHAINYARD_API_KEY",
        "output": "CHAINYARD_OUTPUT",
    }
    defaults: dict[str, str | None] = {"url": DEFAULT_URL, "api_key": None, "output": "table"}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in _KEYS:
        if flags[key]:
            values[key], sources[key] = flags[key], "flag"
        elif env.get(env_names[key]):
            values[key], sources[key] = env[env_names[key]], "env"
        elif from_file.get(key):
            values[key], sources[key] = from_file[key], f"file {path}"
        else:
            values[key], sources[key] = defaults[key], "default"
        if values[key] is not None and not isinstance(values[key], str):
            raise ConfigError(f"{key} from {sources[key]} must be a string")

    url_value = str(values["url"]).strip().rstrip("/")
    if not url_value.startswith(("http://", "https://")):
        raise ConfigError(f"the server URL must start with http:// or https:// (got {url_value!r})")
    try:
        output_value = OutputFormat(str(values["output"]).lower())
    except ValueError as exc:
        raise ConfigError(
            f"output must be 'table' or 'json' (got {values['output']!r} from {sources['output']})"
        ) from exc
    api_key_value: str | None = (values["api_key"] or "").strip() or None
    if api_key_value is None:
        local = local_server.find_key(url_value, env)
        if local is not None:
            api_key_value = local[0]
            sources["api_key"] = f"the local server's initial key ({local[1]})"
    return Settings(
        url=url_value,
        api_key=api_key_value,
        output=output_value,
        profile=chosen_profile,
        sources=sources,
    )
