"""Identifiers: Baseten-style short ids, every character equally likely."""

from __future__ import annotations

import collections
import string

from chainyard.domain.ids import new_id, new_replica_id


def test_ids_have_the_length_and_alphabet_asked_for() -> None:
    allowed = set(string.ascii_lowercase + string.digits)
    for length in (1, 5, 8, 12, 40):
        made = new_id(length)
        assert len(made) == length
        assert set(made) <= allowed
    assert len(new_replica_id()) == 5


def test_every_character_is_about_equally_likely() -> None:
    # 360,000 characters: each of the 36 expects 10,000; a biased mapping (byte % 36 without
    # dropping the top bytes) would give the first four ~11,100 each.
    counts = collections.Counter("".join(new_id(12) for _ in range(30_000)))
    assert len(counts) == 36
    assert max(counts.values()) < 10_600
    assert min(counts.values()) > 9_400


def test_ids_do_not_repeat() -> None:
    made = [new_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)
