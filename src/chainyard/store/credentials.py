"""The credentials replicas present to the gateway's internal route when they call their
dependencies: random tokens, of which only a hash is kept (services/chainlet_credentials.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from chainyard.store.base import Base, UTCDateTime, utcnow


class ChainletCredential(Base):
    """One token of one chainlet of one deployment: it reaches that deployment's chainlets that
    the calling chainlet declared as dependencies, nothing else. Rows go with the deployment."""

    __tablename__ = "chainlet_credentials"

    # SHA-256 of the token, hex: a token is random (256 bits), so no salt or slow hash is needed.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("chain_deployments.id", ondelete="CASCADE"), index=True
    )
    chainlet_id: Mapped[str] = mapped_column(
        ForeignKey("chainlets.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
