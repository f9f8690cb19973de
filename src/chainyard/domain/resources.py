"""Parsing of the CPU and memory figures that truss / truss_chains users write.

`truss_chains.Compute(cpu_count=..., memory=...)` and a truss `config.yaml` carry
Kubernetes-style quantities: ``cpu: "500m"`` or ``cpu_count=2``, ``memory: "16Gi"``.
The instance-type catalogue works in whole millicpu and whole MiB, so these helpers
turn a user's figure into those units. Both round *up*: the result is a minimum the
chosen instance must satisfy, and rounding down could pick a machine a fraction too
small.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "format_memory_mib",
    "format_millicpu",
    "parse_memory_mib",
    "parse_millicpu",
]

_MIB = 1024 * 1024

# Kubernetes spells decimal kilo as "k"; "K" is accepted as well because truss users
# write it and there is no other reading of it.
_MEMORY_SUFFIX_BYTES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}

_MEMORY_RE = re.compile(
    r"""
    (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    (?P<suffix>[A-Za-z]*)
    """,
    re.VERBOSE,
)

_CPU_RE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<milli>m?)")


def parse_memory_mib(value: str | int) -> int:
    """Return a memory quantity in MiB, rounded up.

    A bare number (int or string) is a count of bytes, as in Kubernetes, so ``1024``
    is 1 KiB and becomes 1 MiB after rounding up. Strings may carry a binary suffix
    (``Ki``, ``Mi``, ``Gi``, ``Ti``, ``Pi``, ``Ei``) or a decimal one (``k``/``K``,
    ``M``, ``G``, ``T``, ``P``, ``E``), and a fractional part (``"1.5Gi"``).

    Raises ValueError for empty, negative, zero or malformed values.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"memory must be a string such as '2Gi' or an integer count of bytes, got {value!r}"
        )
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"memory must be positive, got {value!r} bytes")
        return _ceil_div(value, _MIB)

    text = value.strip()
    if not text:
        raise ValueError("memory must not be empty; use a quantity such as '2Gi' or '512Mi'")
    if text.startswith("-"):
        raise ValueError(f"memory must be positive, got {value!r}")
    match = _MEMORY_RE.fullmatch(text.removeprefix("+"))
    if match is None:
        raise ValueError(
            f"memory {value!r} is not a quantity; use a number with an optional suffix "
            f"such as '2Gi', '512Mi', '4G' or a plain count of bytes"
        )
    suffix = match.group("suffix")
    multiplier = _MEMORY_SUFFIX_BYTES.get(suffix)
    if multiplier is None:
        hint = ""
        if suffix == "m":
            # Kubernetes reads "512m" as 0.512 bytes, which is never what anyone means.
            hint = " ('m' means milli in Kubernetes quantities; did you mean 'Mi'?)"
        elif suffix.lower() in {"kb", "mb", "gb", "tb", "ki", "mi", "gi", "ti"}:
            hint = f" (did you mean {suffix[0].upper() + 'i'!r} or {suffix[0].upper()!r}?)"
        raise ValueError(
            f"memory {value!r} has an unknown unit {suffix!r}{hint}; "
            f"use one of Ki, Mi, Gi, Ti, Pi, Ei, K, M, G, T, P, E"
        )
    number = _decimal(match.group("number"), what="memory", original=value)
    total_bytes = number * multiplier
    if total_bytes <= 0:
        raise ValueError(f"memory must be positive, got {value!r}")
    return math.ceil(total_bytes / _MIB)


def parse_millicpu(value: int | float | str) -> int:
    """Return a CPU quantity in millicpu, rounded up.

    Numbers count cores (``1`` -> 1000, ``0.5`` -> 500). Strings are either cores
    (``"2"``, ``"0.5"``) or millicores with an ``m`` suffix (``"500m"``), the two forms
    truss accepts for ``cpu`` and ``Compute(cpu_count=...)``.

    Raises ValueError for empty, zero, negative, non-finite or malformed values.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"cpu must be a number of cores or a string such as '500m', got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cpu must be a finite number of cores, got {value!r}")
    if isinstance(value, int | float):
        # repr() of a float is its shortest round-tripping form, so 0.1 becomes exactly
        # Decimal("0.1") instead of 0.1000000000000000055..., which would round up to 101m.
        cores = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if cores <= 0:
            raise ValueError(f"cpu must be positive, got {value!r}")
        return math.ceil(cores * 1000)

    text = value.strip()
    if not text:
        raise ValueError(
            "cpu must not be empty; use cores such as '2' or millicores such as '500m'"
        )
    if text.startswith("-"):
        raise ValueError(f"cpu must be positive, got {value!r}")
    match = _CPU_RE.fullmatch(text.removeprefix("+"))
    if match is None:
        raise ValueError(
            f"cpu {value!r} is not a quantity; use cores such as '2' or '0.5', "
            f"or millicores such as '500m'"
        )
    number = _decimal(match.group("number"), what="cpu", original=value)
    millicpu = number if match.group("milli") else number * 1000
    if millicpu <= 0:
        raise ValueError(f"cpu must be positive, got {value!r}")
    return math.ceil(millicpu)


def format_memory_mib(mib: int) -> str:
    """Render MiB for people: ``2048`` -> ``"2 GiB"``, ``1536`` -> ``"1.5 GiB"``."""
    if mib >= 1024 and (mib * 10) % 1024 == 0:
        gib = mib / 1024
        return f"{gib:g} GiB"
    return f"{mib} MiB"


def format_millicpu(millicpu: int) -> str:
    """Render millicpu for people: ``4000`` -> ``"4 vCPU"``, ``500`` -> ``"0.5 vCPU"``."""
    return f"{millicpu / 1000:g} vCPU"


def _decimal(text: str, *, what: str, original: object) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as exc:  # the regexes should make this impossible
        raise ValueError(f"{what} {original!r} is not a number") from exc
    if not number.is_finite():
        raise ValueError(f"{what} {original!r} is not a finite number")
    return number


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
