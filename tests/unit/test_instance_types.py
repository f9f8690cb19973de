import json
from pathlib import Path

import pytest

from chainyard.domain.catalogue_file import load_catalogue
from chainyard.domain.instance_types import (
    DEFAULT_INSTANCE_TYPE_ALIASES,
    DEFAULT_INSTANCE_TYPES,
    Catalogue,
    CatalogueError,
    InstanceType,
    NoFittingInstanceType,
    UnknownInstanceType,
    default_catalogue,
    normalize_gpu_type,
)

CPU_IDS = ["1x2", "1x4", "2x8", "4x16", "8x32", "16x64"]
GPU_FAMILIES = ["T4", "L4", "A10G", "A100", "H100", "H100MIG", "H200", "B200", "RTX-PRO-6000"]


def _cpu_type(id: str, millicpu: int, memory_mib: int, price: float) -> InstanceType:
    return InstanceType(
        id=id,
        name=id,
        memory_limit_mib=memory_mib,
        millicpu_limit=millicpu,
        gpu_count=0,
        gpu_type=None,
        gpu_memory_limit_mib=None,
        price_per_minute=price,
    )


# --- the default catalogue ---------------------------------------------------------


def test_default_ids_are_unique() -> None:
    ids = [it.id for it in DEFAULT_INSTANCE_TYPES]
    assert len(ids) == len(set(ids))


def test_defaults_include_the_cpu_types_in_order() -> None:
    catalogue = default_catalogue()
    ordered = [it.id for it in catalogue.all()]
    assert ordered[: len(CPU_IDS)] == CPU_IDS
    for id in CPU_IDS:
        it = catalogue.require(id)
        vcpu, gib = (int(part) for part in id.split("x"))
        assert it.millicpu_limit == vcpu * 1000
        assert it.memory_limit_mib == gib * 1024
        assert it.gpu_count == 0 and it.gpu_type is None and it.gpu_memory_limit_mib is None


def test_defaults_cover_every_gpu_family() -> None:
    families = {it.gpu_type for it in DEFAULT_INSTANCE_TYPES if it.gpu_type is not None}
    assert families == set(GPU_FAMILIES)
    assert default_catalogue().gpu_types()[:4] == ["T4", "L4", "A10G", "A100"]


def test_all_lists_cpu_types_before_gpu_types() -> None:
    kinds = [it.gpu_count > 0 for it in default_catalogue().all()]
    assert kinds == sorted(kinds)


@pytest.mark.parametrize(
    ("id", "vcpu", "ram_gib", "gpu_type", "gpu_count", "vram_gib", "price"),
    [
        ("T4x4x16", 4, 16, "T4", 1, 16, 0.01052),
        ("L4x4x16", 4, 16, "L4", 1, 24, 0.01414),
        ("A10Gx4x16", 4, 16, "A10G", 1, 24, 0.02012),
        ("A10G:2x24x96", 24, 94, "A10G", 2, 48, 0.05672),
        ("A100x12x144", 12, 144, "A100", 1, 80, 0.06667),
        ("H100x26x234", 26, 234, "H100", 1, 80, 0.1664),
        ("H100:2x52x468", 52, 468, "H100", 2, 160, 0.3328),
        ("H100MIG", 8, 59, "H100MIG", 1, 40, 0.0625),
        ("H200", 16, 200, "H200", 1, 141, 0.125),
        ("B200:8", 128, 1792, "B200", 8, 1440, 1.33064),
        ("RTX-PRO-6000", 16, 116, "RTX-PRO-6000", 1, 96, 0.06667),
    ],
)
def test_default_figures(
    id: str, vcpu: int, ram_gib: int, gpu_type: str, gpu_count: int, vram_gib: int, price: float
) -> None:
    it = default_catalogue().require(id)
    assert it.millicpu_limit == vcpu * 1000
    assert it.memory_limit_mib == ram_gib * 1024
    assert it.gpu_type == gpu_type
    assert it.gpu_count == gpu_count
    assert it.gpu_memory_limit_mib == vram_gib * 1024
    assert it.price_per_minute == pytest.approx(price)


def test_display_names_are_readable() -> None:
    catalogue = default_catalogue()
    assert catalogue.require("1x2").name == "1 vCPU, 2 GiB"
    assert catalogue.require("A10Gx4x16").name == "A10G, 4 vCPU, 16 GiB"
    assert catalogue.require("A100:2x24x288").name == "2x A100, 24 vCPU, 288 GiB"


def test_documented_alternative_spellings_resolve() -> None:
    catalogue = default_catalogue()
    assert catalogue.require("L4:4x16").id == "L4x4x16"
    assert catalogue.require("A100:12x144").id == "A100x12x144"
    assert catalogue.require("CPU:4x16").id == "4x16"
    assert "H100_40GB" in catalogue
    assert set(DEFAULT_INSTANCE_TYPE_ALIASES.values()) <= {it.id for it in catalogue.all()}


# --- lookups -------------------------------------------------------------------------


def test_get_and_require() -> None:
    catalogue = default_catalogue()
    assert catalogue.get("2x8") is catalogue.require("2x8")
    assert catalogue.get("nope") is None
    assert "nope" not in catalogue
    assert len(catalogue) == len(DEFAULT_INSTANCE_TYPES)


def test_require_unknown_raises_a_key_error_with_suggestions() -> None:
    catalogue = default_catalogue()
    with pytest.raises(UnknownInstanceType) as excinfo:
        catalogue.require("A10Gx4x61")
    assert isinstance(excinfo.value, KeyError)
    message = str(excinfo.value)
    assert message.startswith("unknown instance type 'A10Gx4x61'")
    assert "A10Gx4x16" in message
    # The message names a few candidates, never the whole catalogue.
    assert message.count("'") <= 2 + 2 * 3


def test_duplicate_ids_are_rejected() -> None:
    it = _cpu_type("x", 1000, 1024, 0.1)
    with pytest.raises(ValueError, match="duplicate instance type id 'x'"):
        Catalogue([it, it])


def test_alias_to_unknown_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="alias 'a' points at unknown instance type 'b'"):
        Catalogue([_cpu_type("x", 1000, 1024, 0.1)], {"a": "b"})


def test_instance_type_checks_its_invariants() -> None:
    with pytest.raises(ValueError, match="gpu_type"):
        InstanceType("g", "g", 1024, 1000, 1, None, None, 0.1)
    with pytest.raises(ValueError, match="memory_limit_mib"):
        InstanceType("c", "c", 0, 1000, 0, None, None, 0.1)


# --- smallest_fit --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("millicpu", "memory_mib", "expected"),
    [
        (1000, 2048, "1x2"),
        (1000, 3000, "1x4"),
        (1500, 1024, "2x8"),
        (500, 512, "1x2"),
        (3500, 15500, "4x16"),
        (16000, 65536, "16x64"),
    ],
)
def test_smallest_fit_cpu(millicpu: int, memory_mib: int, expected: str) -> None:
    assert default_catalogue().smallest_fit(millicpu, memory_mib, None, 0).id == expected


def test_smallest_fit_single_a10g() -> None:
    it = default_catalogue().smallest_fit(1000, 2048, "A10G", 1)
    assert it.id == "A10Gx4x16"
    assert it.gpu_type == "A10G" and it.gpu_count == 1


def test_smallest_fit_two_a10gs() -> None:
    it = default_catalogue().smallest_fit(1000, 2048, "A10G", 2)
    assert it.gpu_type == "A10G" and it.gpu_count >= 2
    assert it.id == "A10G:2x24x96"


@pytest.mark.parametrize("spelling", ["a10g", " A10G ", "A10"])
def test_smallest_fit_accepts_gpu_aliases(spelling: str) -> None:
    assert default_catalogue().smallest_fit(1000, 1024, spelling, 1).id == "A10Gx4x16"


def test_smallest_fit_grows_cpu_and_memory_within_the_family() -> None:
    catalogue = default_catalogue()
    assert catalogue.smallest_fit(6000, 1024, "A10G", 1).id == "A10Gx8x32"
    assert catalogue.smallest_fit(1000, 40 * 1024, "T4", 1).id == "T4x16x64"


def test_smallest_fit_never_picks_mig_unless_asked() -> None:
    catalogue = default_catalogue()
    plain = catalogue.smallest_fit(1000, 1024, "H100", 1)
    assert plain.gpu_type == "H100"
    mig = catalogue.smallest_fit(1000, 1024, "H100_40GB", 1)
    assert mig.gpu_type == "H100MIG"
    assert catalogue.smallest_fit(1000, 1024, "h100mig", 1).id == mig.id


def test_smallest_fit_without_gpu_never_returns_a_gpu_type() -> None:
    catalogue = default_catalogue()
    # 17 vCPU is more than any CPU-only type has, though plenty of GPU types have it.
    with pytest.raises(NoFittingInstanceType, match="no GPU"):
        catalogue.smallest_fit(17000, 1024, None, 0)


def test_smallest_fit_gpu_type_implies_at_least_one_gpu() -> None:
    assert default_catalogue().smallest_fit(1000, 1024, "T4", 0).gpu_count == 1


def test_smallest_fit_prefers_the_cheaper_type_over_the_smaller_one() -> None:
    catalogue = Catalogue(
        [
            _cpu_type("big-cheap", 8000, 32768, 0.01),
            _cpu_type("small-dear", 2000, 4096, 0.05),
            _cpu_type("small-cheap", 2000, 8192, 0.01),
        ]
    )
    assert catalogue.smallest_fit(1000, 1024, None, 0).id == "small-cheap"


@pytest.mark.parametrize(
    ("millicpu", "memory_mib", "gpu_type", "gpu_count", "message_part"),
    [
        (1_000_000, 1024, None, 0, "largest such type is 16x64"),
        (1000, 10**9, None, 0, "no instance type offers"),
        (1000, 1024, "A10G", 64, "largest such type is A10G:8x192x768"),
        (1000, 1024, "V100", 1, "no instance type has GPU type 'V100'"),
    ],
)
def test_smallest_fit_raises_for_absurd_requests(
    millicpu: int, memory_mib: int, gpu_type: str | None, gpu_count: int, message_part: str
) -> None:
    with pytest.raises(NoFittingInstanceType) as excinfo:
        default_catalogue().smallest_fit(millicpu, memory_mib, gpu_type, gpu_count)
    assert isinstance(excinfo.value, ValueError)
    assert message_part in str(excinfo.value)


def test_smallest_fit_rejects_malformed_requests() -> None:
    catalogue = default_catalogue()
    with pytest.raises(ValueError, match="must name the GPU type"):
        catalogue.smallest_fit(1000, 1024, None, 2)
    with pytest.raises(ValueError, match="must not be negative"):
        catalogue.smallest_fit(-1, 1024, None, 0)


def test_normalize_gpu_type() -> None:
    assert normalize_gpu_type("a10g") == "A10G"
    assert normalize_gpu_type("H100_40GB") == "H100MIG"
    assert normalize_gpu_type("rtx_pro_6000") == "RTX-PRO-6000"
    assert normalize_gpu_type("RTX PRO 6000") == "RTX-PRO-6000"
    assert normalize_gpu_type("l40s") == "L40S"


# --- the operator file -------------------------------------------------------------


def _write_json(tmp_path: Path, document: object, name: str = "catalogue.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_load_none_gives_the_defaults() -> None:
    catalogue = load_catalogue(None)
    assert [it.id for it in catalogue.all()] == [it.id for it in default_catalogue().all()]


def test_load_extend_json_adds_and_overrides(tmp_path: Path) -> None:
    path = _write_json(
        tmp_path,
        {
            "instance_types": [
                {
                    "id": "L40Sx8x64",
                    "memory_limit_mib": 65536,
                    "millicpu_limit": 8000,
                    "gpu_count": 1,
                    "gpu_type": "L40S",
                    "gpu_memory_limit_mib": 49152,
                    "price_per_minute": 0.03,
                },
                {"id": "1x2", "memory_limit_mib": 2048, "millicpu_limit": 1000},
            ]
        },
    )
    catalogue = load_catalogue(path)
    added = catalogue.require("L40Sx8x64")
    assert added.gpu_type == "L40S"
    assert added.name == "L40S, 8 vCPU, 64 GiB"
    assert catalogue.smallest_fit(1000, 1024, "l40s", 1).id == "L40Sx8x64"
    # The override replaces the default, here with the price defaulting to zero.
    assert catalogue.require("1x2").price_per_minute == 0.0
    assert len(catalogue) == len(DEFAULT_INSTANCE_TYPES) + 1
    assert "H100MIG" in catalogue
    assert catalogue.require("L4:4x16").id == "L4x4x16"


def test_load_replace_toml_keeps_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(
        """
mode = "replace"

[[instance_types]]
id = "small"
name = "Small box"
memory_limit_mib = 4096
millicpu_limit = 2000
price_per_minute = 0.001

[[instance_types]]
id = "gpu"
memory_limit_mib = 65536
millicpu_limit = 16000
gpu_count = 2
gpu_type = "A10G"
gpu_memory_limit_mib = 49152
price_per_minute = 0.05
"""
    )
    catalogue = load_catalogue(str(path))
    assert [it.id for it in catalogue.all()] == ["small", "gpu"]
    assert catalogue.require("small").name == "Small box"
    assert catalogue.get("1x2") is None
    assert catalogue.get("L4:4x16") is None
    assert catalogue.smallest_fit(1000, 1024, "A10G", 1).id == "gpu"


def test_load_empty_extend_file_gives_the_defaults(tmp_path: Path) -> None:
    path = _write_json(tmp_path, {"mode": "extend"})
    assert len(load_catalogue(path)) == len(DEFAULT_INSTANCE_TYPES)


def _entry(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {"id": "custom", "memory_limit_mib": 1024, "millicpu_limit": 1000}
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    ("entry", "field", "message_part"),
    [
        ({"memory_limit_mib": 1024, "millicpu_limit": 1000}, "id", "required"),
        (_entry(id=7), "id", "must be a string"),
        (_entry(id=""), "id", "non-empty"),
        (_entry(id="has space"), "id", "without blanks"),
        (_entry(memory_limit_mib=0), "memory_limit_mib", "must be positive"),
        (_entry(memory_limit_mib="2Gi"), "memory_limit_mib", "must be an integer"),
        (_entry(memory_limit_mib=1024.5), "memory_limit_mib", "must be an integer"),
        (_entry(millicpu_limit=-1000), "millicpu_limit", "must be positive"),
        (_entry(millicpu_limit=True), "millicpu_limit", "must be an integer"),
        (_entry(gpu_count=1), "gpu_type", "required when gpu_count is 1"),
        (_entry(gpu_type="T4"), "gpu_type", "must be absent/null when gpu_count is 0"),
        (_entry(gpu_count=-1), "gpu_count", "must not be negative"),
        (_entry(gpu_count=1, gpu_type=3), "gpu_type", "must be a string"),
        (
            _entry(gpu_count=1, gpu_type="T4", gpu_memory_limit_mib=0),
            "gpu_memory_limit_mib",
            "must be positive",
        ),
        (_entry(gpu_memory_limit_mib=16384), "gpu_memory_limit_mib", "gpu_count is 0"),
        (_entry(price_per_minute=-0.5), "price_per_minute", ">= 0"),
        (_entry(price_per_minute="cheap"), "price_per_minute", "must be a number"),
        (_entry(name=""), "name", "must not be empty"),
        (_entry(cpu=2), "cpu", "unknown field"),
    ],
)
def test_bad_entries_name_the_file_index_and_field(
    tmp_path: Path, entry: dict[str, object], field: str, message_part: str
) -> None:
    path = _write_json(tmp_path, {"instance_types": [_entry(id="fine"), entry]})
    with pytest.raises(CatalogueError) as excinfo:
        load_catalogue(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert f"instance_types[1].{field}:" in message
    assert message_part in message


def test_bad_toml_entry_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text('[[instance_types]]\nid = "x"\nmemory_limit_mib = "lots"\nmillicpu_limit = 1\n')
    with pytest.raises(CatalogueError, match=r"instance_types\[0\]\.memory_limit_mib: must be"):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("document", "message_part"),
    [
        ([], "top level must be an object"),
        ({"mode": "merge"}, "mode: must be 'extend' or 'replace'"),
        ({"types": []}, "unknown top-level key(s) 'types'"),
        ({"instance_types": {"id": "x"}}, "instance_types: must be a list"),
        ({"mode": "replace", "instance_types": []}, "needs at least one instance type"),
        ({"instance_types": ["1x2"]}, "instance_types[0]: must be an object"),
    ],
)
def test_bad_documents(tmp_path: Path, document: object, message_part: str) -> None:
    path = _write_json(tmp_path, document)
    with pytest.raises(CatalogueError) as excinfo:
        load_catalogue(path)
    assert message_part in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_duplicate_ids_in_the_file(tmp_path: Path) -> None:
    path = _write_json(tmp_path, {"instance_types": [_entry(), _entry()]})
    with pytest.raises(CatalogueError, match=r"instance_types\[1\]\.id: duplicate id 'custom'"):
        load_catalogue(path)


def test_unparseable_and_unsupported_files(tmp_path: Path) -> None:
    broken_json = tmp_path / "broken.json"
    broken_json.write_text("{not json")
    with pytest.raises(CatalogueError, match="invalid JSON at line 1"):
        load_catalogue(broken_json)

    broken_toml = tmp_path / "broken.toml"
    broken_toml.write_text("mode = ")
    with pytest.raises(CatalogueError, match="invalid TOML"):
        load_catalogue(broken_toml)

    yaml_file = tmp_path / "catalogue.yaml"
    yaml_file.write_text("mode: extend\n")
    with pytest.raises(CatalogueError, match=r"use a \.json or \.toml file"):
        load_catalogue(yaml_file)

    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.json")
