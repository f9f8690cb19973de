"""Several servers on one database: the leader publishes its replicas' credentials for the other
servers' gateways, encrypted with the servers' key, never in plain text."""

from __future__ import annotations

from sqlalchemy import select

from chainyard.services import cluster
from chainyard.store.cluster import ReplicaEndpoint
from tests.support.server import Api

SECRET = "replica-credential-0123456789abcdefghijklmno"


def test_replica_credentials_are_published_sealed_and_read_back(api: Api) -> None:
    core = api.core
    endpoint = cluster.Endpoint("r1", "c1", "d1", "READY", "http://10.0.0.5:4000", SECRET)
    cluster.publish_endpoints(core, "leader", [endpoint])
    with core.db.read() as session:
        stored = session.scalar(select(ReplicaEndpoint.credential))
    assert stored is not None and SECRET.encode() not in stored

    opened: dict[bytes, str] = {}
    assert cluster.read_endpoints(core, opened) == [endpoint]
    assert list(opened.values()) == [SECRET]
    # Published again unchanged: sealed once, so followers need not open it again.
    cluster.publish_endpoints(core, "leader", [endpoint])
    with core.db.read() as session:
        assert session.scalar(select(ReplicaEndpoint.credential)) == stored
    assert cluster.read_endpoints(core, opened) == [endpoint]
    # A replica that is gone leaves the follower's cache too.
    cluster.publish_endpoints(core, "leader", [])
    assert cluster.read_endpoints(core, opened) == []
    assert opened == {}


def test_a_credential_sealed_with_another_key_is_not_opened(api: Api) -> None:
    core = api.core
    cluster.publish_endpoints(
        core, "leader", [cluster.Endpoint("r2", "c2", "d2", "READY", "http://x:1", SECRET)]
    )
    with core.db.write() as session:
        row = session.scalar(select(ReplicaEndpoint))
        assert row is not None
        row.credential = b"gAAAAA-not-this-servers-key"
    (read,) = cluster.read_endpoints(core)
    assert read.credential is None
