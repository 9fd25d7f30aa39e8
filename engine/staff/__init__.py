"""Staff: the marketers and admins who use the console and the API (not customers).

- :mod:`.roles`      the roles and the permission table (one place says who may do what)
- :mod:`.passwords`  Argon2id hashing, with re-hashing when the parameters change
- :mod:`.accounts`   add, list, disable, authenticate (rate-limited, locks out)
- :mod:`.sessions`   server-side console sessions with idle and absolute timeouts
- :mod:`.tokens`     scoped API tokens: shown once, stored as keyed hashes, revocable
- :mod:`.totp`       the optional second factor (RFC 6238)

Staff addresses are personal data like a contact's: sealed under a data key of
the staff member's own and found by blind index. Every module here takes a
connection; the use-cases in :mod:`engine.app.staff` own the transactions.
"""

from engine.staff.roles import Permission, Principal, Role, Scope, allowed

__all__ = ["Permission", "Principal", "Role", "Scope", "allowed"]
