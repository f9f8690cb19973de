"""What every use case needs: the store, the catalogue, the cipher, and who is acting."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

from chainyard.domain.instance_types import Catalogue
from chainyard.interpreters import Interpreters
from chainyard.services.auth_throttle import FailureThrottle
from chainyard.services.crypto import SecretCipher
from chainyard.store.db import Database

MANAGE_TYPES = frozenset({"PERSONAL", "WORKSPACE_MANAGE_ALL"})
KEY_MANAGE_TYPES = MANAGE_TYPES | {"WORKSPACE_MANAGE_API_KEYS"}
INVOKE_TYPES = MANAGE_TYPES | {"WORKSPACE_INVOKE"}

# The order of key types, strongest first: a key may create keys of its own rank or lower, so no
# key can mint one that does more than itself. Full keys manage everything; a key manager hands out
# and revokes access (it may mint invoke and metrics keys, the single-purpose keys its job is to
# hand out, and other key managers), never keys that manage chains or secrets. Invoke and metrics
# keys cannot create keys at all (they may not manage keys), so their equal rank only orders them.
KEY_TYPE_RANK = {
    "WORKSPACE_MANAGE_ALL": 3,
    "PERSONAL": 3,
    "WORKSPACE_MANAGE_API_KEYS": 2,
    "WORKSPACE_INVOKE": 1,
    "WORKSPACE_EXPORT_METRICS": 1,
}


@dataclasses.dataclass(frozen=True)
class Actor:
    """The caller of a use case: an API key of one workspace, or the system itself."""

    workspace_id: str
    workspace_name: str
    key_type: str
    key_prefix: str | None = None
    key_name: str | None = None
    source: str = "API"

    @property
    def can_manage(self) -> bool:
        return self.key_type in MANAGE_TYPES

    @property
    def can_manage_keys(self) -> bool:
        return self.key_type in KEY_MANAGE_TYPES

    def may_create_key(self, key_type: str) -> bool:
        """Whether this actor may create a key of `key_type`: one of its own rank or lower."""
        if not self.can_manage_keys:
            return False
        return KEY_TYPE_RANK[key_type] <= KEY_TYPE_RANK[self.key_type]

    @property
    def can_invoke(self) -> bool:
        return self.key_type in INVOKE_TYPES

    @property
    def actor_type(self) -> str:
        return "API_KEY" if self.key_prefix else "BASETEN_SYSTEM"


def system_actor(workspace_id: str, workspace_name: str) -> Actor:
    """The reconciler's identity in the audit log (promotions it completes, cleanups)."""
    return Actor(workspace_id, workspace_name, key_type="SYSTEM", source="SYSTEM")


@dataclasses.dataclass
class Core:
    db: Database
    catalogue: Catalogue
    cipher: SecretCipher
    data_dir: pathlib.Path
    # Called after a change the reconciler should act on, so it need not wait for its next tick.
    wake_reconciler: Callable[[], None] = lambda: None
    # Called after autoscaling settings change, so the autoscaler drops what it assumed.
    autoscaling_changed: Callable[[], None] = lambda: None
    # Called after chainlet rows are deleted: the reconciler checks its replicas against the store
    # again (and wakes), rather than trusting which chainlets it last saw exist.
    chainlets_deleted: Callable[[], None] = lambda: None
    # Whether the server is handling HTTP requests now: the loops' paced passes rest only then
    # (services/pacing.py). Without a server (tests, the admin CLI) nobody waits.
    requests_waiting: Callable[[], bool] = lambda: False
    # Which Python runs a chainlet whose base image asks for one (interpreters.py).
    interpreters: Interpreters = dataclasses.field(default_factory=Interpreters)
    # SHA-256 of a presented key -> (valid until, monotonic seconds; its actor): see
    # api_keys.authenticate.
    auth_cache: dict[str, tuple[float, Actor]] = dataclasses.field(default_factory=dict)
    # SHA-256 of a chainlet's chain key -> (valid until, monotonic seconds; what it may call):
    # see chainlet_credentials.reach.
    chain_key_cache: dict[str, tuple[float, Any]] = dataclasses.field(default_factory=dict)
    # Failed authentications per client address (services/auth_throttle.py); None: unthrottled.
    auth_throttle: FailureThrottle | None = None
