"""`DeploymentContext.secrets` as a replica sees it: a lookup that fails with a message naming the
secret and what to do, where truss's plain dict raises a bare `KeyError('name')`."""

from __future__ import annotations

from collections.abc import Iterable


class ChainletSecrets(dict[str, str]):
    """The values of the secrets a chainlet declared (`assets.secret_keys`) that the workspace
    has. A missing one raises `KeyError` saying whether the workspace lacks it or the chainlet did
    not declare it."""

    def __init__(self, values: dict[str, str], declared: Iterable[str]) -> None:
        super().__init__(values)
        self._declared = frozenset(declared)

    def __missing__(self, name: str) -> str:
        if name in self._declared:
            raise KeyError(
                f"secret {name!r} is not set in this workspace (the chainlet lists it in "
                f"assets.secret_keys): set it (`chainyard secrets set {name} VALUE` or "
                "POST /v1/secrets); replicas started after that see it"
            )
        raise KeyError(
            f"secret {name!r} is not in this chainlet's assets.secret_keys: declare it in "
            "RemoteConfig(assets=Assets(secret_keys=[...])) to read it"
        )
