"""Our own deploy endpoint (not part of Baseten's spec): manifest in, deployment out.

Only the shape is checked here; resource strings (cpu, memory) and the chainlet graph are checked
by the domain layer, which owns those rules.
"""

from __future__ import annotations

import re
from typing import Annotated

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
    "NAME_PATTERN",
    "ActivateResponseV1",
    "ChainletManifest",
    "ComputeSpec",
    "DeployManifest",
    "DeployResponse",
]

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


class DeployManifest(BaseModel):
    """Request to deploy a chain: a new chain by name, or a new deployment of a chain by id."""

    model_config = _CLOSED

    chain_name: Name | None = Field(default=None, description="Chain to create or deploy to")
    chain_id: str | None = Field(default=None, description="Existing chain to deploy to")
    environment: Name | None = Field(
        default=None, description="Environment to promote the deployment into"
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
