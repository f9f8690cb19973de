"""Our own deploy endpoint (not part of Baseten's spec): manifest in, deployment out.

Only the shape is checked here; resource strings (cpu, memory) and the chainlet graph are checked
by the domain layer, which owns those rules.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from chainyard.schemas.deployments import ChainDeploymentV1

__all__ = [
    "DEVELOPMENT_NAME",
    "NAME_PATTERN",
    "ActivateResponseV1",
    "BaseImageSpec",
    "ChainletManifest",
    "ComputeSpec",
    "DeployManifest",
    "DeployResponse",
    "ExternalDataSpec",
    "RequirementsFileSpec",
]

# The name of every development deployment, as on Baseten.
DEVELOPMENT_NAME = "development"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_NAME_RE = re.compile(NAME_PATTERN)


def _check_name(value: str) -> str:
    # fullmatch, because "$" alone would let a trailing newline through.
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid name {value!r}: use 1 to 100 characters from letters, digits, '_', '.' "
            "and '-', starting with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def _check_source_file(value: str) -> str:
    parts = value.split("/")
    if (
        not value.endswith(".py")
        or value.startswith("/")
        or "\\" in value
        or any(p in ("", ".", "..") for p in parts)
        or len(value) > 500
    ):
        raise ValueError(
            f"invalid source_file {value!r}: a relative path inside the archive to a .py file, "
            "with '/' separators and no '..'"
        )
    return value


SourceFile = Annotated[str, AfterValidator(_check_source_file)]

# A closed manifest turns a misspelt key into a 400 instead of a silently ignored setting.
_CLOSED = ConfigDict(extra="forbid")


class ComputeSpec(BaseModel):
    """Resources one replica of a chainlet asks for."""

    model_config = _CLOSED

    cpu_count: StrictInt | StrictFloat | StrictStr = Field(
        default=1, description="CPUs: a number (1, 0.5) or millicores ('500m')"
    )
    memory: str = Field(default="2Gi", description="Memory, e.g. '2Gi', '512Mi', '4G'")
    gpu: str | None = Field(default=None, description="GPU type, e.g. 'A10G'; null for none")
    gpu_count: StrictInt = Field(default=0, ge=0, description="GPUs per replica")
    predict_concurrency: StrictInt = Field(
        default=1, ge=1, description="Requests one replica handles at once"
    )


class BaseImageSpec(BaseModel):
    """`DockerImage.base_image`: chainyard runs no images; the Python version picks the
    interpreter (docs/local-runtime.md)."""

    model_config = _CLOSED

    kind: Literal["baseten", "custom"] = Field(description="BasetenImage or CustomImage")
    name: str = Field(description="'py311', or the custom image's reference")
    python_version: str | None = Field(
        default=None, description="'3.11': from the BasetenImage, or a custom image's tag"
    )
    python_executable_path: str | None = Field(
        default=None, description="CustomImage.python_executable_path"
    )
    docker_auth: bool = Field(
        default=False, description="Whether CustomImage.docker_auth is set (never its contents)"
    )


class RequirementsFileSpec(BaseModel):
    """`DockerImage.requirements_file` (or the deprecated `pip_requirements_file`), read by
    `chainyard push`."""

    model_config = _CLOSED

    path: str | None = Field(
        default=None,
        description="Its path inside the source archive (pip runs from its directory, so local "
        "paths in it resolve); null when it lies outside the chain's directory",
    )
    kind: Literal["requirements.txt", "pyproject.toml", "uv.lock"] = Field(
        description="The file's format, from its name"
    )
    requirements: list[str] = Field(
        default_factory=list,
        description="Its requirement lines (pyproject.toml: [project].dependencies)",
    )


class ExternalDataSpec(BaseModel):
    """One `Assets.external_data` item: downloaded into the chainlet's data dir at build."""

    model_config = _CLOSED

    url: str = Field(description="Where to download it from")
    local_data_path: str = Field(description="Path under the chainlet's data dir")
    backend: str = Field(default="http_public", description="truss's download backend")


class ChainletManifest(BaseModel):
    """One chainlet of a deploy manifest."""

    model_config = _CLOSED

    name: Name = Field(description="Chainlet name, unique within the chain")
    dependencies: list[Name] = Field(
        default_factory=list, description="Names of the chainlets it calls"
    )
    compute: ComputeSpec = Field(default_factory=ComputeSpec, description="Requested resources")
    instance_type_id: str | None = Field(
        default=None, description="Instance type to use instead of deriving one from compute"
    )
    is_entrypoint: StrictBool = Field(default=False, description="True for the chain's entrypoint")
    pip_requirements: list[str] = Field(
        default_factory=list, description="Extra pip requirements of the chainlet"
    )
    secret_keys: list[str] = Field(
        default_factory=list, description="Names of the secrets the chainlet reads"
    )
    base_image: BaseImageSpec | None = Field(
        default=None, description="DockerImage.base_image (its Python version)"
    )
    requirements_file: RequirementsFileSpec | None = Field(
        default=None, description="DockerImage.requirements_file"
    )
    apt_requirements: list[str] = Field(
        default_factory=list, description="DockerImage.apt_requirements: Debian packages"
    )
    data_dir: str | None = Field(
        default=None,
        description="DockerImage.data_dir: a directory inside the source archive, copied into "
        "the chainlet's data dir",
    )
    external_package_dirs: list[str] = Field(
        default_factory=list,
        description="DockerImage.external_package_dirs: directories inside the source archive "
        "put on the chainlet's import path",
    )
    truss_server_version_override: str | None = Field(
        default=None, description="DockerImage.truss_server_version_override"
    )
    env_variables: dict[str, str] = Field(
        default_factory=dict, description="ChainletOptions.env_variables"
    )
    external_data: list[ExternalDataSpec] = Field(
        default_factory=list, description="Assets.external_data"
    )
    cached: list[dict[str, Any]] = Field(
        default_factory=list, description="Assets.cached (refused: see docs/api-compatibility.md)"
    )
    weights: list[dict[str, Any]] = Field(
        default_factory=list, description="Assets.weights (refused: see docs/api-compatibility.md)"
    )
    build_commands: list[str] = Field(
        default_factory=list,
        description="RemoteConfig.build_commands (refused: see docs/api-compatibility.md)",
    )
    metadata: Any = Field(
        default=None,
        description="ChainletOptions.metadata: any JSON value describing the chainlet; kept with "
        "it and written to its build log",
    )
    enable_b10_tracing: bool = Field(
        default=False,
        description="ChainletOptions.enable_b10_tracing (refused when true: see "
        "docs/api-compatibility.md)",
    )


class DeployManifest(BaseModel):
    """Request to deploy a chain: a new chain by name, or a new deployment of a chain by id."""

    model_config = _CLOSED

    chain_name: Name | None = Field(default=None, description="Chain to create or deploy to")
    chain_id: str | None = Field(default=None, description="Existing chain to deploy to")
    environment: Name | None = Field(
        default=None, description="Environment to promote the deployment into"
    )
    development: StrictBool = Field(
        default=False,
        description="Make this the chain's development deployment (replacing the one it has): "
        "named 'development', outside every environment, at most one replica, scales to zero "
        "when idle (docs/development.md)",
    )
    deployment_name: Name | None = Field(default=None, description="Name of the deployment")
    entrypoint: Name | None = Field(default=None, description="Name of the entrypoint chainlet")
    source_file: SourceFile | None = Field(
        default=None, description="The chain file inside the source archive, e.g. 'chain.py'"
    )
    chainlets: list[ChainletManifest] = Field(description="The chainlets")

    @model_validator(mode="after")
    def _exactly_one_chain_reference(self) -> DeployManifest:
        if (self.chain_name is None) == (self.chain_id is None):
            raise ValueError("give exactly one of chain_name and chain_id")
        return self

    @model_validator(mode="after")
    def _development_stays_outside_environments(self) -> DeployManifest:
        # Baseten: a development deployment can't be promoted to an environment, and it is
        # always named "development": another name would not be kept, so it is refused.
        if self.development and self.environment is not None:
            raise ValueError(
                "a development deployment cannot be promoted into an environment: "
                "leave out environment, or push a published deployment"
            )
        if self.development and self.deployment_name not in (None, DEVELOPMENT_NAME):
            raise ValueError(
                f"a development deployment is always named '{DEVELOPMENT_NAME}': "
                "leave out deployment_name"
            )
        return self


class DeployResponse(BaseModel):
    """Answer to a deploy: the chain and its new deployment."""

    chain_id: str = Field(description="Id of the chain deployed to")
    chain_deployment: ChainDeploymentV1 = Field(description="The new deployment")
    warnings: list[str] = Field(
        default_factory=list,
        description="What will not run as on Baseten, or is missing (secrets the workspace "
        "lacks, a substituted Python): also written to the chainlets' build logs",
    )


class ActivateResponseV1(BaseModel):
    """Answer to activating a deployment (mirrors DeactivateResponseV1)."""

    success: bool = Field(default=True, description="True when activation was accepted")
