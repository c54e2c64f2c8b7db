"""Public identifiers: a type prefix and a time-ordered random part (``acct_…``, ``req_…``)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def encode(value: int, alphabet: str, length: int) -> str:
    """``value`` in base ``len(alphabet)``, left-padded to ``length`` digits (high digits cut)."""
    base = len(alphabet)
    out = []
    for _ in range(length):
        value, rem = divmod(value, base)
        out.append(alphabet[rem])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 random chars (80 bits): sortable, unguessable."""
    millis = int(time.time() * 1000)
    return f"{prefix}_{encode(millis, _ALPHABET, 10)}{encode(secrets.randbits(80), _ALPHABET, 16)}"
