from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alttext.accounts import keys


def test_generated_keys_are_well_formed_unique_and_long() -> None:
    generated = {keys.generate_key() for _ in range(200)}
    assert len(generated) == 200
    for key in generated:
        assert key.startswith("at_live_")
        assert len(key) == keys.KEY_LENGTH
        assert keys.is_well_formed(key)


def test_a_single_typo_is_caught_by_the_checksum() -> None:
    key = keys.generate_key()
    pos = len(keys.KEY_PREFIX) + 5
    replacement = "A" if key[pos] != "A" else "B"
    typo = key[:pos] + replacement + key[pos + 1 :]
    assert not keys.is_well_formed(typo)
    assert not keys.is_well_formed(key[:-1])
    assert not keys.is_well_formed(key + "x")
    assert not keys.is_well_formed(key.replace("at_live_", "at_test_"))


@given(st.text(max_size=60))
def test_random_strings_are_not_keys(text: str) -> None:
    assert not keys.is_well_formed(text)


def test_hash_is_stable_and_does_not_contain_the_secret() -> None:
    key = keys.generate_key()
    assert keys.hash_key(key) == keys.hash_key(key)
    assert len(keys.hash_key(key)) == 64
    assert key[8:] not in keys.hash_key(key)
    assert keys.display_prefix(key) == key[:12]


def test_seeded_keys_are_deterministic_and_valid() -> None:
    a = keys.key_from_seed(b"x" * 32)
    assert a == keys.key_from_seed(b"x" * 32)
    assert a != keys.key_from_seed(b"y" * 32)
    assert keys.is_well_formed(a)
