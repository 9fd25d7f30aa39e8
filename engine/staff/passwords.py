"""Argon2id password hashing (argon2-cffi, RFC 9106 parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes).
_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)

#: A password shorter than this is refused when it is set.
MIN_LENGTH = 12
MAX_LENGTH = 1024

#: A hash of a random password: verifying against it when no account matches costs as
#: much as a real check, so the answer's timing does not tell whether an address has one.
_DUMMY = _hasher.hash("tact-no-such-account-dummy-password")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password is at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"a password is at most {MAX_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; constant work when ``stored`` is None."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
