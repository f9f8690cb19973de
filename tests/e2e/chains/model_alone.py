"""A chains.ModelBase pushed on its own: a truss model served as a chain of one. It keeps a tally
across calls, reads its context, and says whether `load` ran (Baseten never calls it)."""

import pydantic
import truss_chains as chains


class TallyState(pydantic.BaseModel):
    total: int
    note: str
    loaded: bool
    environment: str | None


class Tally(chains.ModelBase):
    remote_config = chains.RemoteConfig(
        name="tally-model", compute=chains.Compute(cpu_count=1, memory="512Mi")
    )

    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._total = 0
        self._loaded = False
        self._environment = context.environment.name if context.environment else None

    def load(self) -> None:
        self._loaded = True

    async def predict(self, increment: int, note: str = "") -> TallyState:
        if increment < 0:
            raise ValueError("the tally only grows")
        self._total += increment
        return TallyState(
            total=self._total, note=note, loaded=self._loaded, environment=self._environment
        )
