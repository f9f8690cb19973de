"""Tables that let several servers share one database: who leads, where replicas listen, and
the demand each server's gateway sees."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from chainyard.store.base import Base


class Lease(Base):
    """One named lease (e.g. "control-loops"): held by `holder` until `expires_at` (epoch s)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float)
    acquired_at: Mapped[float] = mapped_column(Float)


class ReplicaEndpoint(Base):
    """A replica the leader runs, as its runtime reports it: what other servers route to."""

    __tablename__ = "replica_endpoints"

    replica_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chainlet_id: Mapped[str] = mapped_column(String(16), index=True)
    deployment_id: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(300))
    # The credential the replica wants from its callers (runtime/base.py ReplicaState), encrypted
    # with the servers' key: the database alone does not open the replicas.
    credential: Mapped[bytes | None] = mapped_column(LargeBinary)
    holder: Mapped[str] = mapped_column(String(200))


class ServerDemand(Base):
    """Requests each server's gateway holds per chainlet (running or queued), for the leader's
    autoscaler; written when it changes."""

    __tablename__ = "server_demand"

    server: Mapped[str] = mapped_column(String(200), primary_key=True)
    demand: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[float] = mapped_column(Float)
