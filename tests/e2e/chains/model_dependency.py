"""A chainlet calling a chains.ModelBase dependency through its stub's `predict`."""

import truss_chains as chains


class Scale(chains.ModelBase):
    def predict(self, value: float, factor: float = 2.0) -> float:  # sync: run in a thread
        return value * factor


@chains.mark_entrypoint("model-dependency")
class Measure(chains.ChainletBase):
    def __init__(self, scale: Scale = chains.depends(Scale)) -> None:
        self._scale = scale

    def run_remote(self, values: list[float]) -> list[float]:  # sync, as its dependency
        return [self._scale.predict(value=v, factor=3.0) for v in values]
