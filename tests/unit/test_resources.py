import pytest

from chainyard.domain.resources import (
    format_memory_mib,
    format_millicpu,
    parse_memory_mib,
    parse_millicpu,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2Gi", 2048),
        ("512Mi", 512),
        ("1.5Gi", 1536),
        ("1Ti", 1024 * 1024),
        ("2048Ki", 2),
        (" 16Gi ", 16 * 1024),
        # Decimal units are powers of ten: 4 GB is about 3814.7 MiB, rounded up.
        ("4G", 3815),
        ("4K", 1),
        ("4k", 1),
        ("1M", 1),
        ("1000M", 954),
        # A bare number counts bytes, as in Kubernetes.
        ("1073741824", 1024),
        (1073741824, 1024),
        ("1024", 1),
        (1, 1),
        ("1e9", 954),
        ("+1Gi", 1024),
        (".5Gi", 512),
    ],
)
def test_parse_memory_mib(value: str | int, expected: int) -> None:
    assert parse_memory_mib(value) == expected


@pytest.mark.parametrize(
    ("value", "message_part"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("-1Gi", "must be positive"),
        (-5, "must be positive"),
        ("0", "must be positive"),
        ("0Gi", "must be positive"),
        (0, "must be positive"),
        ("lots", "is not a quantity"),
        ("1.2.3Gi", "is not a quantity"),
        ("Gi", "is not a quantity"),
        ("2 Gi", "is not a quantity"),
        ("512m", "did you mean 'Mi'"),
        ("2GB", "unknown unit 'GB'"),
        ("2gi", "unknown unit 'gi'"),
        ("3Xi", "unknown unit 'Xi'"),
        (True, "integer count of bytes"),
    ],
)
def test_parse_memory_mib_rejects(value: object, message_part: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_memory_mib(value)  # type: ignore[arg-type]
    assert message_part in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", 500),
        (0.5, 500),
        (1, 1000),
        ("2", 2000),
        ("0.5", 500),
        (" 4 ", 4000),
        ("1500m", 1500),
        (1.5, 1500),
        # Float artefacts must not leak into the result: 0.1 * 1000 is 100.00000000000001.
        (0.1, 100),
        (0.3, 300),
        # Kubernetes' precision is 1m; anything finer is rounded up, never down to zero.
        ("0.5m", 1),
        (0.0001, 1),
    ],
)
def test_parse_millicpu(value: int | float | str, expected: int) -> None:
    assert parse_millicpu(value) == expected


@pytest.mark.parametrize(
    ("value", "message_part"),
    [
        (0, "must be positive"),
        (0.0, "must be positive"),
        (-1, "must be positive"),
        ("-500m", "must be positive"),
        ("0m", "must be positive"),
        ("0", "must be positive"),
        ("", "must not be empty"),
        ("two", "is not a quantity"),
        ("500 m", "is not a quantity"),
        ("1Gi", "is not a quantity"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "number of cores"),
        (None, "number of cores"),
    ],
)
def test_parse_millicpu_rejects(value: object, message_part: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_millicpu(value)  # type: ignore[arg-type]
    assert message_part in str(excinfo.value)


def test_format_helpers() -> None:
    assert format_memory_mib(2048) == "2 GiB"
    assert format_memory_mib(1536) == "1.5 GiB"
    assert format_memory_mib(1000) == "1000 MiB"
    assert format_memory_mib(1100) == "1100 MiB"
    assert format_millicpu(4000) == "4 vCPU"
    assert format_millicpu(500) == "0.5 vCPU"
