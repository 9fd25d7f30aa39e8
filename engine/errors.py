"""Every error Tact raises on purpose, in one tree.

The ``tact`` command maps them to exit codes in engine.cli.main: 2 for
ConfigurationError, DatabaseError, RenderError, CampaignError and RuleError (the
input or setup is unusable), 1 for every other TactError.

Messages never carry personal data: no address, name or phone number, and no
key or ciphertext bytes. They name the contact by its id, the file by its path
and line, and say what to do next.

    ConfigurationError          -- cannot run at all; fix the setup and restart.
    │                              Deliberately outside TactError so that no
    │                              ``except TactError`` can swallow it.
    ├── MissingKeysError        -- no keyring: run ``tact init`` or set TACT_KEYRING_FILE
    ├── KeyringExposedError     -- the key file is readable by group or others: chmod 600 it
    ├── PlaceholderSecretError  -- a key is missing, short, or a known placeholder
    └── KeyMismatchError        -- the keyring does not open this database's data keys

    TactError
    ├── DatabaseError           -- engine.db: the database or keystore cannot be opened or
    │   │                          used (damaged, truncated, no schema, unreachable); names
    │   │                          the file or host, never a password
    │   └── KeystoreMissing     -- the keystore file is gone while the database holds
    │                              contacts: never recreated empty
    ├── VaultError
    │   ├── DecryptionError     -- a ciphertext was altered or moved to another row/column
    │   ├── ContactErased       -- the contact was erased; its data is gone for good
    │   └── ContactNotFound     -- no contact with that address or id
    ├── InvalidAddress          -- an address email-validator refuses (reason given)
    ├── ImportFileError         -- the import file cannot be read at all (format, encoding)
    ├── RotationError           -- key rotation cannot proceed (e.g. keyring not file-backed)
    ├── RenderError             -- engine.render.sandbox: a template failed (file:line)
    │   ├── RenderSecurityError -- a template reached outside its context
    │   ├── OutputTooLarge      -- the output cap, or a huge '*' / '**'
    │   └── RenderLimit         -- a bound on loops, calls, nesting or numbers
    ├── BoundExceeded           -- engine.cli.templates_cmd: the render child hit its memory
    │                              or CPU limit
    ├── CampaignError           -- engine.render.campaign: an unusable campaign directory
    ├── CampaignNotFound        -- engine.campaigns: no campaign with that name or id
    ├── IllegalTransition       -- engine.campaigns: a lifecycle move the table refuses
    ├── RenderPaused            -- engine.campaigns.pipeline: a campaign paused itself on a
    │                              template that failed to render (render-error)
    ├── DemoError               -- engine.demo: the demo cannot use what it found
    ├── BadOption               -- engine.cli.campaigns_cmd: an option value it cannot use
    ├── UnknownTopic            -- engine.consent.topics: no topic by that name
    ├── HeaderError             -- engine.render.mime: a value a header cannot carry
    │   └── HeaderInjection     -- CR, LF or NUL in a header-bound value: refused, never stripped
    ├── InvalidToken            -- engine.links.tokens: forged, altered or unknown-key link
    │   └── ExpiredToken        -- genuine but too old for what it opens
    ├── RateLimited             -- engine.notices.optin: too many requests for one address
    ├── NoticeNotSent           -- engine.notices.messages: a transactional email was refused
    ├── SegmentError            -- engine.segments: a build or model that cannot be used
    │   ├── RuleError           -- a rule segment that does not parse (file:line:column)
    │   └── ModelFormatError    -- a stored model that is not a valid Tact model
    └── DkimError               -- engine.render.dkim: a key or selector that cannot sign
"""

from __future__ import annotations


class ConfigurationError(Exception):
    """The program cannot run with this configuration."""


class MissingKeysError(ConfigurationError):
    """No keyring was found."""


class PlaceholderSecretError(ConfigurationError):
    """A secret is empty, too short or a well-known placeholder."""


class KeyMismatchError(ConfigurationError):
    """The keyring given does not belong to this database."""


class KeyringExposedError(ConfigurationError):
    """The key file Tact keeps is readable by other users."""


class TactError(Exception):
    """Base of every runtime error Tact raises deliberately."""


class DatabaseError(TactError):
    """The database or its keystore cannot be opened or used; the message says what to do."""


class KeystoreMissing(DatabaseError):
    """The keystore is gone while contacts exist: their data keys went with it."""


class VaultError(TactError):
    """Something the vault refused to do."""


class DecryptionError(VaultError):
    """A ciphertext does not open under its own key and place."""


class ContactErased(VaultError):
    """The contact was erased; nothing about them can be read any more."""


class ContactNotFound(VaultError):
    """No contact matches."""


class InvalidAddress(TactError):
    """An email address that Tact refuses to store or send to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportFileError(TactError):
    """The import file as a whole cannot be read."""


class RotationError(TactError):
    """Key rotation cannot proceed."""
