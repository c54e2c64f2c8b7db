"""Dashboard passwords: Argon2id (argon2-cffi, RFC 9106 parameters), hashed off the event loop.

Hashing takes tens of milliseconds of CPU on purpose, so it runs in a worker thread. A login for
an address without an account, or without a password, verifies against a dummy hash instead,
so the time taken does not tell whether the address is registered.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from alttext.errors import InvalidRequest

MIN_LENGTH = 10
MAX_LENGTH = 200  # characters; long passphrases are welcome, megabytes are not


@functools.cache
def _hasher() -> PasswordHasher:
    # Argon2id, t=3, m=64 MiB, p=4: argon2-cffi's defaults (RFC 9106's second recommendation).
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password: equal timing for unknown addresses")


def check_new_password(password: str, *, email: str | None = None, field: str = "password") -> None:
    """Refuse a password that is too short, too long or the account's own address."""
    problem = None
    if len(password) < MIN_LENGTH:
        problem = f"Use at least {MIN_LENGTH} characters (a few words make a good one)."
    elif len(password) > MAX_LENGTH:
        problem = f"Use at most {MAX_LENGTH} characters."
    elif email and password.strip().lower() == email.strip().lower():
        problem = "Do not use your e-mail address as your password."
    if problem:
        raise InvalidRequest(problem, errors=[{"field": field, "message": problem}])


def hash_password_sync(password: str) -> str:
    return _hasher().hash(password)


def verify_password_sync(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no stored hash, the same work is done
    against a dummy hash and the answer is False."""
    try:
        _hasher().verify(stored or _dummy_hash(), password[: MAX_LENGTH * 4])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password_sync, stored, password)
