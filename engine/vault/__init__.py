"""The vault: envelope encryption, blind index, key rotation, erasure, import, export.

Only this package holds keys or decrypts. Everything else asks it for fields.
"""

from engine.vault.addresses import normalize_address
from engine.vault.keyring import Keyring, load_keyring
from engine.vault.vault import FIELD_COLUMNS, ContactCipher, PersonalData, Vault

__all__ = [
    "FIELD_COLUMNS",
    "ContactCipher",
    "Keyring",
    "PersonalData",
    "Vault",
    "load_keyring",
    "normalize_address",
]
