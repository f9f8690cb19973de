"""The instance-type catalogue: the hardware shapes a chainlet can be placed on.

Ids and figures follow Baseten's published instance types so that ids sent by
Baseten clients (``"1x4"``, ``"A10G:2x24x96"``, ``"H100:2x52x468"``) mean the same
thing here. An operator can extend or replace the catalogue with a JSON or TOML file;
see docs/instance-types.md for the figures' sources and the file format.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from chainyard.domain.resources import format_memory_mib, format_millicpu

__all__ = [
    "DEFAULT_INSTANCE_TYPES",
    "DEFAULT_INSTANCE_TYPE_ALIASES",
    "Catalogue",
    "CatalogueError",
    "InstanceType",
    "NoFittingInstanceType",
    "UnknownInstanceType",
    "default_catalogue",
    "describe_instance_type",
    "normalize_gpu_type",
]


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One hardware shape, with the fields of Baseten's ``InstanceTypeV1``.

    ``price_per_minute`` is in US dollars and is not part of ``InstanceTypeV1``; it is
    what makes "cheapest fitting type" decidable.
    """

    id: str
    name: str
    memory_limit_mib: int
    millicpu_limit: int
    gpu_count: int
    gpu_type: str | None
    gpu_memory_limit_mib: int | None
    price_per_minute: float

    def __post_init__(self) -> None:
        problem = _field_problem(
            id=self.id,
            name=self.name,
            memory_limit_mib=self.memory_limit_mib,
            millicpu_limit=self.millicpu_limit,
            gpu_count=self.gpu_count,
            gpu_type=self.gpu_type,
            gpu_memory_limit_mib=self.gpu_memory_limit_mib,
            price_per_minute=self.price_per_minute,
        )
        if problem is not None:
            field, message = problem
            raise ValueError(f"instance type {self.id!r}: {field}: {message}")

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0


class UnknownInstanceType(KeyError):
    """An instance type id that the catalogue does not hold."""

    def __init__(self, instance_type_id: str, suggestions: Sequence[str] = ()) -> None:
        self.instance_type_id = instance_type_id
        self.suggestions = tuple(suggestions)
        message = f"unknown instance type {instance_type_id!r}"
        if self.suggestions:
            message += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the message, quotes and all.
        return self.message


class NoFittingInstanceType(ValueError):
    """No instance type satisfies a resource request."""


class CatalogueError(ValueError):
    """An operator catalogue file is unreadable or invalid."""


def _field_problem(
    *,
    id: str,
    name: str,
    memory_limit_mib: int,
    millicpu_limit: int,
    gpu_count: int,
    gpu_type: str | None,
    gpu_memory_limit_mib: int | None,
    price_per_minute: float,
) -> tuple[str, str] | None:
    """The first violated invariant of an instance type, as (field, message)."""
    if not id or id != id.strip() or any(ch.isspace() for ch in id):
        return "id", f"must be a non-empty string without blanks, got {id!r}"
    if not name.strip():
        return "name", "must not be empty"
    if memory_limit_mib <= 0:
        return "memory_limit_mib", f"must be positive, got {memory_limit_mib}"
    if millicpu_limit <= 0:
        return "millicpu_limit", f"must be positive, got {millicpu_limit}"
    if gpu_count < 0:
        return "gpu_count", f"must not be negative, got {gpu_count}"
    if gpu_count > 0 and (gpu_type is None or not gpu_type.strip()):
        return "gpu_type", f"is required when gpu_count is {gpu_count}"
    if gpu_count == 0 and gpu_type is not None:
        return "gpu_type", f"must be absent/null when gpu_count is 0, got {gpu_type!r}"
    if gpu_memory_limit_mib is not None:
        if gpu_count == 0:
            return "gpu_memory_limit_mib", "must be absent/null when gpu_count is 0"
        if gpu_memory_limit_mib <= 0:
            return "gpu_memory_limit_mib", f"must be positive, got {gpu_memory_limit_mib}"
    if not math.isfinite(price_per_minute) or price_per_minute < 0:
        return "price_per_minute", f"must be a finite number >= 0, got {price_per_minute}"
    return None


# Families in the order Baseten's reference lists them; sorting by this keeps `all()`
# readable (small, old cards first) rather than alphabetical.
_GPU_FAMILY_ORDER: Final[tuple[str, ...]] = (
    "T4",
    "L4",
    "A10G",
    "A100",
    "H100",
    "H100MIG",
    "H200",
    "B200",
    "RTX-PRO-6000",
)

# Keys are in normalised form (see `_normalize_key`). "H100_40GB" and "RTX_PRO_6000" are
# the names truss's Accelerator enum uses; "A10" is how Baseten's pricing page labels
# its A10G cards.
_GPU_TYPE_ALIASES: Final[Mapping[str, str]] = {
    "A10": "A10G",
    "H100-40GB": "H100MIG",
    "H100-MIG": "H100MIG",
    "RTXPRO6000": "RTX-PRO-6000",
    "RTX-PRO6000": "RTX-PRO-6000",
    "RTX6000-PRO": "RTX-PRO-6000",
}


def normalize_gpu_type(gpu_type: str) -> str:
    """Return the canonical spelling of a GPU type name.

    Case, surrounding blanks, and ``_``/space versus ``-`` do not matter, and the
    aliases truss uses are accepted: ``"a10g"`` -> ``"A10G"``, ``"H100_40GB"`` ->
    ``"H100MIG"``, ``"RTX_PRO_6000"`` -> ``"RTX-PRO-6000"``. Names the function does not
    know come back upper-cased, so operator-defined families still compare reliably.
    """
    key = _normalize_key(gpu_type)
    return _GPU_TYPE_ALIASES.get(key, key)


def _normalize_key(text: str) -> str:
    return "-".join(text.strip().upper().replace("_", " ").replace("-", " ").split())


def describe_instance_type(
    millicpu_limit: int,
    memory_limit_mib: int,
    gpu_count: int = 0,
    gpu_type: str | None = None,
) -> str:
    """A readable display name, e.g. ``"A10G, 4 vCPU, 16 GiB"`` or ``"2x H100, ..."``."""
    shape = f"{format_millicpu(millicpu_limit)}, {format_memory_mib(memory_limit_mib)}"
    if gpu_count <= 0 or gpu_type is None:
        return shape
    gpus = gpu_type if gpu_count == 1 else f"{gpu_count}x {gpu_type}"
    return f"{gpus}, {shape}"


def _it(
    id: str,
    vcpu: int,
    ram_gib: int,
    price_per_minute: float,
    gpu_type: str | None = None,
    gpu_count: int = 0,
    vram_gib_per_gpu: int | None = None,
) -> InstanceType:
    millicpu = vcpu * 1000
    memory_mib = ram_gib * 1024
    gpu_memory_mib = None if vram_gib_per_gpu is None else vram_gib_per_gpu * gpu_count * 1024
    return InstanceType(
        id=id,
        name=describe_instance_type(millicpu, memory_mib, gpu_count, gpu_type),
        memory_limit_mib=memory_mib,
        millicpu_limit=millicpu,
        gpu_count=gpu_count,
        gpu_type=gpu_type,
        gpu_memory_limit_mib=gpu_memory_mib,
        price_per_minute=price_per_minute,
    )


# Figures from Baseten's instance type reference (docs.baseten.co/deployment/resources)
# unless docs/instance-types.md says otherwise for an entry. gpu_memory_limit_mib is the
# total over all GPUs of the instance, as in Baseten's tables.
DEFAULT_INSTANCE_TYPES: Final[tuple[InstanceType, ...]] = (
    _it("1x2", 1, 2, 0.00058),
    _it("1x4", 1, 4, 0.00086),
    _it("2x8", 2, 8, 0.00173),
    _it("4x16", 4, 16, 0.00346),
    _it("8x32", 8, 32, 0.00691),
    _it("16x64", 16, 64, 0.01382),
    _it("T4x4x16", 4, 16, 0.01052, "T4", 1, 16),
    _it("T4x8x32", 8, 32, 0.01504, "T4", 1, 16),
    _it("T4x16x64", 16, 64, 0.02408, "T4", 1, 16),
    _it("T4:2x24x96", 24, 96, 0.03912, "T4", 2, 16),
    _it("T4:4x48x192", 48, 192, 0.07824, "T4", 4, 16),
    _it("L4x4x16", 4, 16, 0.01414, "L4", 1, 24),
    _it("L4:2x24x96", 24, 96, 0.04002, "L4", 2, 24),
    _it("L4:4x48x192", 48, 192, 0.08003, "L4", 4, 24),
    _it("A10Gx4x16", 4, 16, 0.02012, "A10G", 1, 24),
    _it("A10Gx8x32", 8, 32, 0.02424, "A10G", 1, 24),
    _it("A10Gx16x64", 16, 64, 0.03248, "A10G", 1, 24),
    # Baseten's table gives 94/188/750 GiB of RAM for these, below what the ids suggest.
    _it("A10G:2x24x96", 24, 94, 0.05672, "A10G", 2, 24),
    _it("A10G:4x48x192", 48, 188, 0.11344, "A10G", 4, 24),
    _it("A10G:8x192x768", 192, 750, 0.32576, "A10G", 8, 24),
    _it("A100x12x144", 12, 144, 0.06667, "A100", 1, 80),
    _it("A100:2x24x288", 24, 288, 0.13334, "A100", 2, 80),
    _it("A100:3x36x432", 36, 432, 0.20000, "A100", 3, 80),
    _it("A100:4x48x576", 48, 576, 0.26668, "A100", 4, 80),
    _it("A100:5x60x720", 60, 720, 0.33333, "A100", 5, 80),
    _it("A100:6x72x864", 72, 864, 0.40000, "A100", 6, 80),
    _it("A100:7x84x1008", 84, 1008, 0.46667, "A100", 7, 80),
    _it("A100:8x96x1152", 96, 1152, 0.53333, "A100", 8, 80),
    _it("H100MIG", 8, 59, 0.06250, "H100MIG", 1, 40),
    # Earlier MIG shape that API responses still name; price from Baseten's older pricing.
    _it("H100MIG:3x13x117", 13, 117, 0.08250, "H100MIG", 1, 40),
    _it("H100", 16, 118, 0.10833, "H100", 1, 80),
    _it("H100:2", 32, 236, 0.21666, "H100", 2, 80),
    _it("H100:4", 64, 472, 0.43332, "H100", 4, 80),
    _it("H100:8", 128, 944, 0.86664, "H100", 8, 80),
    # Earlier H100 shapes, still the ids in Baseten's API examples and responses.
    _it("H100x26x234", 26, 234, 0.16640, "H100", 1, 80),
    _it("H100:2x52x468", 52, 468, 0.33280, "H100", 2, 80),
    _it("H200", 16, 200, 0.12500, "H200", 1, 141),
    _it("H200:2", 32, 400, 0.25000, "H200", 2, 141),
    _it("H200:4", 64, 800, 0.50000, "H200", 4, 141),
    _it("H200:8", 128, 1600, 1.00000, "H200", 8, 141),
    _it("B200", 16, 224, 0.16633, "B200", 1, 180),
    _it("B200:2", 32, 448, 0.33266, "B200", 2, 180),
    _it("B200:4", 64, 896, 0.66532, "B200", 4, 180),
    _it("B200:8", 128, 1792, 1.33064, "B200", 8, 180),
    _it("RTX-PRO-6000", 16, 116, 0.06667, "RTX-PRO-6000", 1, 96),
    _it("RTX-PRO-6000:2", 32, 233, 0.13334, "RTX-PRO-6000", 2, 96),
    _it("RTX-PRO-6000:4", 64, 466, 0.26668, "RTX-PRO-6000", 4, 96),
    _it("RTX-PRO-6000:8", 128, 931, 0.53336, "RTX-PRO-6000", 8, 96),
)

# Other spellings Baseten has documented for the same shapes: its current docs write
# "L4:4x16" and "A100:12x144" where API responses say "L4x4x16" and "A100x12x144", an
# older revision wrote CPU types as "CPU:4x16" and the MIG type as "H100_40GB".
DEFAULT_INSTANCE_TYPE_ALIASES: Final[Mapping[str, str]] = {
    "L4:4x16": "L4x4x16",
    "A100:12x144": "A100x12x144",
    "H100_40GB": "H100MIG",
    "CPU:1x2": "1x2",
    "CPU:1x4": "1x4",
    "CPU:2x8": "2x8",
    "CPU:4x16": "4x16",
    "CPU:8x32": "8x32",
    "CPU:16x64": "16x64",
}


class Catalogue:
    """An immutable set of instance types, looked up by id and searched by fit."""

    def __init__(
        self,
        instance_types: Iterable[InstanceType],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        by_id: dict[str, InstanceType] = {}
        for instance_type in instance_types:
            if instance_type.id in by_id:
                raise ValueError(f"duplicate instance type id {instance_type.id!r}")
            by_id[instance_type.id] = instance_type
        resolved_aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            if target not in by_id:
                raise ValueError(f"alias {alias!r} points at unknown instance type {target!r}")
            # A real id always wins over an alias of the same spelling.
            if alias not in by_id:
                resolved_aliases[alias] = target
        self._by_id = by_id
        self._aliases = resolved_aliases
        self._ordered = sorted(by_id.values(), key=_display_order)

    def get(self, instance_type_id: str) -> InstanceType | None:
        found = self._by_id.get(instance_type_id)
        if found is None and instance_type_id in self._aliases:
            found = self._by_id[self._aliases[instance_type_id]]
        return found

    def require(self, instance_type_id: str) -> InstanceType:
        found = self.get(instance_type_id)
        if found is None:
            candidates = list(self._by_id) + list(self._aliases)
            suggestions = difflib.get_close_matches(instance_type_id, candidates, n=3)
            raise UnknownInstanceType(instance_type_id, suggestions)
        return found

    def all(self) -> list[InstanceType]:
        """Every type: CPU-only ones by size, then GPU ones by family, count and size."""
        return list(self._ordered)

    @property
    def aliases(self) -> Mapping[str, str]:
        return dict(self._aliases)

    def gpu_types(self) -> list[str]:
        """The GPU families on offer, in display order."""
        seen: dict[str, None] = {}
        for instance_type in self._ordered:
            if instance_type.gpu_type is not None:
                seen.setdefault(instance_type.gpu_type, None)
        return list(seen)

    def smallest_fit(
        self,
        millicpu: int,
        memory_mib: int,
        gpu_type: str | None = None,
        gpu_count: int = 0,
    ) -> InstanceType:
        """The cheapest type meeting a request, ties going to the smaller type.

        It needs at least ``millicpu`` and ``memory_mib``. With ``gpu_type`` it needs
        exactly that GPU family (compared through `normalize_gpu_type`, so the
        fractional "H100MIG" is only chosen when asked for by name) and at least
        ``gpu_count`` GPUs, a count below 1 meaning 1. Without ``gpu_type`` only
        GPU-less types qualify, as on Baseten, where a CPU request never lands on a
        GPU machine.
        """
        if millicpu < 0 or memory_mib < 0:
            raise ValueError(
                f"resource request must not be negative, got {millicpu} millicpu "
                f"and {memory_mib} MiB"
            )
        wanted_type: str | None = None
        if gpu_type is not None and gpu_type.strip():
            wanted_type = normalize_gpu_type(gpu_type)
            gpu_count = max(gpu_count, 1)
        elif gpu_count > 0:
            raise ValueError(f"a request for {gpu_count} GPU(s) must name the GPU type")

        candidates = [
            it
            for it in self._ordered
            if it.millicpu_limit >= millicpu
            and it.memory_limit_mib >= memory_mib
            and _gpu_matches(it, wanted_type, gpu_count)
        ]
        if candidates:
            return min(candidates, key=_cost_order)
        raise NoFittingInstanceType(
            self._no_fit_message(millicpu, memory_mib, wanted_type, gpu_count)
        )

    def _no_fit_message(
        self, millicpu: int, memory_mib: int, gpu_type: str | None, gpu_count: int
    ) -> str:
        request = f"{format_millicpu(millicpu)} ({millicpu}m), {format_memory_mib(memory_mib)}"
        if gpu_type is None:
            request += " and no GPU"
            family = [it for it in self._ordered if not it.has_gpu]
        else:
            request += f" and {gpu_count}x {gpu_type}"
            family = [
                it
                for it in self._ordered
                if it.gpu_type is not None and normalize_gpu_type(it.gpu_type) == gpu_type
            ]
        message = f"no instance type offers {request}"
        if not family:
            if gpu_type is None:
                return message + "; the catalogue has no GPU-less instance types"
            known = ", ".join(self.gpu_types()) or "none"
            return message + f"; no instance type has GPU type {gpu_type!r} (known: {known})"
        largest = max(family, key=lambda it: (it.gpu_count, it.millicpu_limit, it.memory_limit_mib))
        return message + f"; the largest such type is {largest.id} ({largest.name})"

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, instance_type_id: object) -> bool:
        return isinstance(instance_type_id, str) and self.get(instance_type_id) is not None

    def __iter__(self) -> Iterator[InstanceType]:
        return iter(self._ordered)

    def __repr__(self) -> str:
        return f"Catalogue({len(self)} instance types)"


def _gpu_matches(it: InstanceType, wanted_type: str | None, gpu_count: int) -> bool:
    if wanted_type is None:
        return not it.has_gpu
    return (
        it.gpu_type is not None
        and normalize_gpu_type(it.gpu_type) == wanted_type
        and it.gpu_count >= gpu_count
    )


def _cost_order(it: InstanceType) -> tuple[float, int, int, int, str]:
    return (it.price_per_minute, it.gpu_count, it.millicpu_limit, it.memory_limit_mib, it.id)


def _display_order(it: InstanceType) -> tuple[int, int, str, int, int, int, float, str]:
    if it.gpu_type is None:
        return (0, 0, "", 0, it.millicpu_limit, it.memory_limit_mib, it.price_per_minute, it.id)
    family = normalize_gpu_type(it.gpu_type)
    rank = (
        _GPU_FAMILY_ORDER.index(family) if family in _GPU_FAMILY_ORDER else len(_GPU_FAMILY_ORDER)
    )
    return (
        1,
        rank,
        family,
        it.gpu_count,
        it.millicpu_limit,
        it.memory_limit_mib,
        it.price_per_minute,
        it.id,
    )


def default_catalogue() -> Catalogue:
    """Baseten's instance types, with their documented alternative spellings."""
    return Catalogue(DEFAULT_INSTANCE_TYPES, DEFAULT_INSTANCE_TYPE_ALIASES)
