"""API key format: ``at_live_`` + 32 base62 random characters + a 6-character checksum.

190 bits of randomness make a plain SHA-256 the right hash (no salt or slow hash needed: the
secret cannot be guessed, and a fast hash keeps lookups cheap). The CRC32 checksum lets the
service reject a mistyped or truncated key without touching the database, the way GitHub's
tokens do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib

from alttext.ids import encode

KEY_PREFIX = "at_live_"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 32
_CHECKSUM_CHARS = 6
KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_CHARS + _CHECKSUM_CHARS
DISPLAY_CHARS = len(KEY_PREFIX) + 4


def _base62(value: int, length: int) -> str:
    return encode(value, _BASE62, length)


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_CHARS)


def generate_key() -> str:
    body = "".join(secrets.choice(_BASE62) for _ in range(_RANDOM_CHARS))
    return KEY_PREFIX + body + _checksum(body)


def key_from_seed(seed: bytes) -> str:
    """A key derived from 32+ secret bytes: the development key stays the same across restarts."""
    body = _base62(int.from_bytes(hashlib.sha256(seed).digest(), "big"), _RANDOM_CHARS)
    return KEY_PREFIX + body + _checksum(body)


def is_well_formed(key: str) -> bool:
    """Shape and checksum only; says nothing about whether the key exists."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    body = key[len(KEY_PREFIX) : len(KEY_PREFIX) + _RANDOM_CHARS]
    check = key[len(KEY_PREFIX) + _RANDOM_CHARS :]
    if any(c not in _BASE62 for c in body):
        return False
    return hmac.compare_digest(check, _checksum(body))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_CHARS]
