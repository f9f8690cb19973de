"""Several servers on one database: the leader lease, the replica endpoints the leader publishes,
and the demand every server's gateway reports.

Times are epoch seconds from each server's clock; servers sharing a database must keep their
clocks in step (NTP), as any lease-based design assumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from chainyard.services.context import Core
from chainyard.store.cluster import Lease, ReplicaEndpoint, ServerDemand

CONTROL_LOOPS = "control-loops"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    replica_id: str
    chainlet_id: str
    deployment_id: str
    phase: str
    address: str | None
    # The replica's credential (replica_auth.py), plain; stored encrypted.
    credential: str | None = dataclasses.field(default=None, repr=False)


def acquire(core: Core, name: str, holder: str, *, ttl: float, now: float) -> bool:
    """Takes or renews the lease; True while `holder` has it until now + ttl. A lease whose
    holder stopped renewing is free once it has expired."""
    try:
        with core.db.write() as session:
            lease = session.scalar(select(Lease).where(Lease.name == name).with_for_update())
            if lease is None:
                session.add(Lease(name=name, holder=holder, expires_at=now + ttl, acquired_at=now))
                return True
            if lease.holder != holder and lease.expires_at > now:
                return False
            if lease.holder != holder:
                lease.acquired_at = now
            lease.holder = holder
            lease.expires_at = now + ttl
            return True
    except IntegrityError:
        return False  # another server inserted the first row at the same moment


def release(core: Core, name: str, holder: str) -> None:
    """Gives the lease up at once (a clean shutdown), so another server need not wait it out."""
    with core.db.write() as session:
        session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def publish_endpoints(core: Core, holder: str, endpoints: Iterable[Endpoint]) -> None:
    """Replaces the published replicas with the leader's current ones (rows of an earlier
    leader go too)."""
    wanted = {e.replica_id: e for e in endpoints}
    with core.db.write() as session:
        rows = {r.replica_id: r for r in session.scalars(select(ReplicaEndpoint))}
        for replica_id, stale in rows.items():
            if replica_id not in wanted:
                session.delete(stale)
        for replica_id, e in wanted.items():
            row = rows.get(replica_id)
            if row is None:
                session.add(
                    ReplicaEndpoint(
                        replica_id=e.replica_id,
                        chainlet_id=e.chainlet_id,
                        deployment_id=e.deployment_id,
                        phase=e.phase,
                        address=e.address,
                        credential=_sealed(core, e.credential),
                        holder=holder,
                    )
                )
                continue
            if (row.phase, row.address, row.holder) != (e.phase, e.address, holder):
                row.phase, row.address, row.holder = e.phase, e.address, holder
            # A replica's credential never changes: sealed once (each sealing differs).
            if row.credential is None and e.credential:
                row.credential = _sealed(core, e.credential)


def _sealed(core: Core, credential: str | None) -> bytes | None:
    return core.cipher.encrypt(credential) if credential else None


def read_endpoints(core: Core, opened: dict[bytes, str] | None = None) -> list[Endpoint]:
    """The published replicas, credentials decrypted. `opened` (sealed -> plain) spares a
    follower decrypting every row on every read: pass the same dict each time; it keeps only
    what the rows still hold."""
    known = dict(opened or {})
    if opened is not None:
        opened.clear()
    with core.db.read() as session:
        rows = list(session.scalars(select(ReplicaEndpoint)))
    endpoints = []
    for r in rows:
        credential = None
        if r.credential is not None:
            sealed = bytes(r.credential)
            credential = known.get(sealed) or _opened(core, sealed)
            if credential is not None and opened is not None:
                opened[sealed] = credential
        endpoints.append(
            Endpoint(r.replica_id, r.chainlet_id, r.deployment_id, r.phase, r.address, credential)
        )
    return endpoints


def _opened(core: Core, sealed: bytes) -> str | None:
    try:
        return core.cipher.decrypt(sealed)
    except ValueError:
        # Sealed with another key (servers sharing a database must share CHAINYARD_SECRET_KEY):
        # this server cannot reach that replica, which then answers 401.
        return None


def publish_demand(core: Core, server: str, demand: Mapping[str, float], *, now: float) -> None:
    with core.db.write() as session:
        row = session.get(ServerDemand, server)
        values = {k: float(v) for k, v in demand.items() if v}
        if row is None:
            session.add(ServerDemand(server=server, demand=values, updated_at=now))
        else:
            row.demand = values
            row.updated_at = now


def others_demand(core: Core, server: str, *, fresh_after: float) -> dict[str, float]:
    """The demand other servers reported recently, summed per chainlet (a server that stopped
    reporting counts no more)."""
    total: dict[str, float] = {}
    with core.db.read() as session:
        for row in session.scalars(
            select(ServerDemand).where(
                ServerDemand.server != server, ServerDemand.updated_at > fresh_after
            )
        ):
            for chainlet_id, value in (row.demand or {}).items():
                total[chainlet_id] = total.get(chainlet_id, 0.0) + float(value)
    return total


def has_peers(core: Core, server: str, *, fresh_after: float) -> bool:
    """Whether another server reported recently (it routes to the published endpoints)."""
    with core.db.read() as session:
        return (
            session.scalar(
                select(ServerDemand.server)
                .where(ServerDemand.server != server, ServerDemand.updated_at > fresh_after)
                .limit(1)
            )
            is not None
        )
