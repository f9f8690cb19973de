"""Human tables for the wire models. JSON output does not come through here: it is the wire
format as it is."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chainyard.schemas import (
    APIKeyInfoV1,
    AuditLogEntryV1,
    AutoscalingSettingsV1,
    ChainDeploymentV1,
    ChainEnvironmentV1,
    ChainV1,
    DeploymentStatusV1,
    InstanceTypeWithPriceV1,
    SecretV1,
)

_STATUS_STYLE = {
    DeploymentStatusV1.ACTIVE: "green",
    DeploymentStatusV1.SCALED_TO_ZERO: "cyan",
    DeploymentStatusV1.BUILD_FAILED: "red",
    DeploymentStatusV1.DEPLOY_FAILED: "red",
    DeploymentStatusV1.FAILED: "red",
    DeploymentStatusV1.UNHEALTHY: "red",
    DeploymentStatusV1.INACTIVE: "dim",
}


def table(*columns: str, title: str | None = None) -> Table:
    result = Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left")
    return result


def status(value: DeploymentStatusV1) -> Text:
    return Text(value.value, style=_STATUS_STYLE.get(value, "yellow"))


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def chains(items: Iterable[ChainV1]) -> Table:
    out = table("ID", "NAME", "DEPLOYMENTS", "CREATED")
    for chain in items:
        out.add_row(chain.id, chain.name, str(chain.deployments_count), when(chain.created_at))
    return out


def chain(item: ChainV1, environments: Sequence[ChainEnvironmentV1]) -> RenderableType:
    head = table("FIELD", "VALUE", title=f"chain {item.name}")
    head.add_row("id", item.id)
    head.add_row("name", item.name)
    head.add_row("deployments", str(item.deployments_count))
    head.add_row("team", item.team_name)
    head.add_row("created", when(item.created_at))
    return Group(head, environments_table(environments))


def deployments(items: Iterable[ChainDeploymentV1]) -> Table:
    out = table("ID", "STATUS", "ENVIRONMENT", "CHAINLETS", "CREATED")
    for d in items:
        out.add_row(
            d.id,
            status(d.status),
            # A development deployment is in no environment; this column is where one looks.
            d.environment or ("(development)" if d.is_development else "-"),
            ", ".join(c.name for c in d.chainlets),
            when(d.created_at),
        )
    return out


def chainlets(deployment: ChainDeploymentV1, *, title: str | None = None) -> Table:
    out = table("CHAINLET", "ID", "INSTANCE TYPE", "STATUS", "REPLICAS", title=title)
    for c in deployment.chainlets:
        out.add_row(
            c.name, c.id, c.instance_type_name, status(c.status), str(c.active_replica_count)
        )
    return out


def deployment(d: ChainDeploymentV1) -> RenderableType:
    title = f"deployment {d.id} of chain {d.chain_id}: "
    header = Text(title) + status(d.status)
    if d.environment:
        header += Text(f" (serves {d.environment})")
    if d.is_development:
        header += Text(" (development)", style="magenta")
    return Group(header, chainlets(d))


def environments_table(items: Iterable[ChainEnvironmentV1]) -> Table:
    out = table("ENVIRONMENT", "CURRENT", "STATUS", "PROMOTING", "CREATED")
    for env in items:
        current, candidate = env.current_deployment, env.candidate_deployment
        out.add_row(
            env.name,
            current.id if current else "-",
            status(current.status) if current else Text("-"),
            f"{candidate.id} ({candidate.status.value})" if candidate else "-",
            when(env.created_at),
        )
    return out


def _autoscaling(settings: AutoscalingSettingsV1 | None) -> str:
    if settings is None:
        return "-"
    return (
        f"{settings.min_replica}..{settings.max_replica} replicas, "
        f"target {settings.concurrency_target}, window {settings.autoscaling_window}s, "
        f"scale-down delay {settings.scale_down_delay}s"
    )


def chainlet_settings(env: ChainEnvironmentV1) -> Table:
    out = table("CHAINLET", "INSTANCE TYPE", "AUTOSCALING", title=f"chainlets in {env.name}")
    for s in env.chainlet_settings:
        out.add_row(s.chainlet_name, s.instance_type.id, _autoscaling(s.autoscaling_settings))
    return out


def environment(env: ChainEnvironmentV1) -> RenderableType:
    p = env.promotion_settings
    head = table("FIELD", "VALUE", title=f"environment {env.name} of chain {env.chain_id}")
    current, candidate = env.current_deployment, env.candidate_deployment
    head.add_row("current", f"{current.id} ({current.status.value})" if current else "-")
    head.add_row("promoting", f"{candidate.id} ({candidate.status.value})" if candidate else "-")
    head.add_row("cleanup", str(p.promotion_cleanup_strategy or "-"))
    head.add_row("redeploy on promotion", str(bool(p.redeploy_on_promotion)).lower())
    head.add_row("rolling deploy", str(bool(p.rolling_deploy)).lower())
    head.add_row("created", when(env.created_at))
    return Group(head, chainlet_settings(env))


def instance_types(items: Iterable[InstanceTypeWithPriceV1]) -> Table:
    out = table("ID", "NAME", "CPU", "MEMORY", "GPU", "USD/MIN")
    for item in items:
        t = item.instance_type
        gpu = f"{t.gpu_count}x {t.gpu_type}" if t.gpu_count and t.gpu_type else "-"
        out.add_row(
            t.id,
            t.name,
            f"{t.millicpu_limit / 1000:g}",
            f"{t.memory_limit_mib / 1024:g} GiB",
            gpu,
            f"{item.price:.5f}",
        )
    return out


def secrets(items: Iterable[SecretV1]) -> Table:
    out = table("NAME", "ID", "CREATED")
    for s in items:
        out.add_row(s.name, s.id, when(s.created_at))
    return out


def api_keys(items: Iterable[APIKeyInfoV1]) -> Table:
    out = table("PREFIX", "NAME", "TYPE")
    for k in items:
        out.add_row(k.prefix, k.name or "-", k.type.value)
    return out


# Payload fields that repeat what the row already says, or ids no one reads in a table.
_AUDIT_NOISE = frozenset(
    {
        "event_type",
        "chain_id",
        "chain_name",
        "chain_deployment_name",
        "chainlet_id",
        "environment_id",
    }
)


def audit(items: Iterable[AuditLogEntryV1]) -> Table:
    out = table("TIME", "EVENT", "ACTOR", "DETAILS")
    for entry in items:
        actor = entry.actor.api_key_prefix or entry.actor.email or entry.actor.type.value
        details = entry.event_data.model_dump(mode="json", exclude=set(_AUDIT_NOISE))
        summary = ", ".join(
            f"{k}={v}" for k, v in details.items() if isinstance(v, str | int | float)
        )
        out.add_row(when(entry.created), entry.event_type.value, actor, summary)
    return out
