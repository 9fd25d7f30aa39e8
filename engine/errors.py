"""Every error Tact raises on purpose, in one tree: each class is defined here.

Modules that raise one re-export it under the name they always had (``from
engine.errors import RenderError`` in ``engine.render.sandbox``), so callers may
import it from either place; this module imports nothing of Tact's, so every
layer can use it. ``tests/test_errors.py`` checks that the drawing below and the
classes defined here agree, name for name and parent for parent.

The ``tact`` command maps them to exit codes in engine.cli.main: 2 for
ConfigurationError, DatabaseError, RenderError, TemplateError, LintFailed, RuleError,
BoundExceeded (the input or setup is unusable) and CampaignNotDue, 1 for every other
TactError.

Every class has a stable ``code`` (kebab-case, e.g. ``campaign-not-found``, ``lint-failed``)
and may carry a ``hint`` (the next step); under ``--json`` the command prints
``{"error": {"code", "message", "hint"}}`` (LintFailed adds ``findings``).
``tests/test_errors.py`` checks that each class names its own code and no two share one.

Messages never carry personal data: no address, name or phone number, and no
key or ciphertext bytes. They name the contact by its id, the file by its path
and line, and say what to do next.

    ConfigurationError          -- cannot run at all; fix the setup and restart.
    │                              Deliberately outside TactError so that no
    │                              ``except TactError`` can swallow it.
    ├── MissingKeysError        -- no keyring: run ``tact init`` or set TACT_KEYRING_FILE
    ├── KeyringExposedError     -- the key file is readable by group or others: chmod 600 it
    ├── PlaceholderSecretError  -- a key is missing, short, or a known placeholder
    ├── KeyMismatchError        -- the keyring does not open this database's data keys
    └── SmtpConfigurationError  -- engine.delivery.smtp: a transport set up to run unsafely
                                   (e.g. AUTH in clear)

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
    ├── ImportNotFound          -- engine.app.imports: no import run with that id
    ├── RotationError           -- key rotation cannot proceed (e.g. keyring not file-backed)
    ├── RenderError             -- engine.render.sandbox: a template failed (file:line)
    │   ├── RenderSecurityError -- a template reached outside its context
    │   ├── OutputTooLarge      -- the output cap, or a huge '*' / '**'
    │   └── RenderLimit         -- a bound on loops, calls, nesting or numbers
    │       └── RenderTimeout   -- a render used more CPU time than its deadline
    ├── BoundExceeded           -- engine.app.templates: the render child hit its memory
    │                              or CPU limit
    ├── TemplateError           -- engine.render.template: an unusable template folder
    │   └── CampaignExists      -- engine.campaigns: a campaign of that name exists already
    ├── LintFailed              -- engine.app.templates: a campaign refused before launch;
    │                              carries the lint's findings
    ├── CampaignNotFound        -- engine.campaigns: no campaign with that name or id
    ├── IllegalTransition       -- engine.campaigns: a lifecycle move the table refuses
    │   └── CampaignNotDue      -- engine.app.campaigns: sent before its time (--now launches it)
    ├── TestRecipientRefused    -- engine.app.test_sends: an address a test send may not go to
    │                              (not on the test-recipient list, or suppressed)
    ├── RenderPaused            -- engine.campaigns.sender: a campaign paused itself on a
    │                              template that failed to render (render-error)
    ├── DemoError               -- engine.app.demo: the demo cannot use what it found
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
    ├── DkimError               -- engine.render.dkim: a key or selector that cannot sign
    ├── StaffError              -- engine.staff: staff accounts, sessions and API tokens
    │   ├── AuthenticationFailed -- wrong address, password or code, a disabled account, or
    │   │   │                      an unknown, expired or revoked session or token (one
    │   │   │                      message for all: it never says which part was wrong)
    │   │   └── AccountLocked   -- too many failed logins: locked for a while (retry_after)
    │   ├── PermissionDenied    -- the role or the token's scope does not allow this
    │   ├── StaffNotFound       -- no member of staff with that address or id
    │   ├── StaffExists         -- a member of staff with that address exists already
    │   └── InvalidStaffInput   -- a role, scope or password that cannot be used
    └── IdempotencyConflict     -- engine.app.idempotency: an Idempotency-Key reused for
                                   another request, or its first request still running

Internal signals: raised and caught inside one package, never reaching a caller of
Tact's API. They sit outside TactError so that a broad ``except TactError`` in a
face never mistakes one for a user-facing error.

    ValueError
    └── RowError                -- engine.people.rows: one import row refused (the importer
                                   writes it to the rejects file and goes on)
    ConnectionFailed            -- engine.delivery.smtp_mux: connecting to the SMTP server
                                   failed (the transport retries or reports it)
    CsrfRejected                -- engine.web.csrf: a form that did not come from our pages
                                   (answered 403)
    RuntimeError
    └── PageTooLarge            -- engine.web.pages: a page rendered past its cap (answered 500)

A private signal (a name with a leading underscore, such as ``_Lost`` in
engine.delivery.smtp_mux) is raised and caught within one module and stays there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol


class ConfigurationError(Exception):
    """The program cannot run with this configuration."""

    code = "configuration"
    hint: str | None = None


class MissingKeysError(ConfigurationError):
    """No keyring was found."""

    code = "missing-keys"


class PlaceholderSecretError(ConfigurationError):
    """A secret is empty, too short or a well-known placeholder."""

    code = "placeholder-secret"


class KeyMismatchError(ConfigurationError):
    """The keyring given does not belong to this database."""

    code = "key-mismatch"


class KeyringExposedError(ConfigurationError):
    """The key file Tact keeps is readable by other users."""

    code = "keyring-exposed"


class SmtpConfigurationError(ConfigurationError):
    """The transport was configured in a way it refuses to run (e.g. AUTH in clear)."""

    code = "smtp-configuration"


class TactError(Exception):
    """Base of every runtime error Tact raises deliberately.

    ``code`` is the stable, kebab-case name of the kind of error (what ``--json`` prints
    and a script tests for; each class sets its own); ``hint`` the next step to take,
    when the message does not already say it.
    """

    code = "tact-error"
    hint: str | None = None

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


class DatabaseError(TactError):
    """The database or its keystore cannot be opened or used; the message says what to do."""

    code = "database"


class KeystoreMissing(DatabaseError):
    """The keystore is gone while contacts exist: their data keys went with it."""

    code = "keystore-missing"


class VaultError(TactError):
    """Something the vault refused to do."""

    code = "vault"


class DecryptionError(VaultError):
    """A ciphertext does not open under its own key and place."""

    code = "decryption"


class ContactErased(VaultError):
    """The contact was erased; nothing about them can be read any more."""

    code = "contact-erased"


class ContactNotFound(VaultError):
    """No contact matches."""

    code = "contact-not-found"


class InvalidAddress(TactError):
    """An email address that Tact refuses to store or send to."""

    code = "invalid-address"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportFileError(TactError):
    """The import file as a whole cannot be read."""

    code = "import-file"


class ImportNotFound(TactError):
    """No import run with that id."""

    code = "import-not-found"


class RotationError(TactError):
    """Key rotation cannot proceed."""

    code = "rotation"


class RenderError(TactError):
    """A template failed to render; names the template and line, never the data."""

    code = "render-error"

    def __init__(self, message: str, template: str | None = None, line: int | None = None):
        where = f"{template}:{line}" if template and line else (template or "template")
        super().__init__(f"{where}: {message}")
        self.message = message
        self.template = template
        self.line = line


class RenderSecurityError(RenderError):
    """A template reached for something outside its context or its own files."""

    code = "render-security"


class OutputTooLarge(RenderError):
    """A template produced (or tried to build) more than the cap allows."""

    code = "output-too-large"


class RenderLimit(RenderError):
    """A template went past a bound on loops, calls, nesting or numbers."""

    code = "render-limit"


class RenderTimeout(RenderLimit):
    """A render used more CPU time than its deadline allows."""

    code = "render-timeout"


class BoundExceeded(TactError):
    """The render child hit the process-level memory or CPU limit."""

    code = "bound-exceeded"


class TemplateError(TactError):
    """A template folder (templates/campaigns/NAME) that cannot be used; names the file."""

    code = "template-error"


class CampaignExists(TemplateError):
    """A campaign of that name exists already (names are unique: they key the Message-IDs)."""

    code = "campaign-exists"


class LintFailed(TactError):
    """A campaign refused before launch (create, edit, schedule): its lint found errors.

    ``findings`` holds the lint's findings (level, where, message) for a face to show
    as data; the message names the first error and how many there are.
    """

    code = "lint-failed"

    def __init__(self, message: str, findings: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.findings = tuple(findings)


class CampaignNotFound(TactError):
    """No campaign with that name or id."""

    code = "campaign-not-found"


class IllegalTransition(TactError):
    """The transition table refuses this move."""

    code = "illegal-transition"


class CampaignNotDue(IllegalTransition):
    """``campaigns send`` on a campaign whose time has not come (``--now`` launches it)."""

    code = "campaign-not-due"


class TestRecipientRefused(TactError):
    """A test send to an address it may not go to: not on the configured test-recipient
    list, or suppressed. The message never repeats the address."""

    code = "test-recipient-refused"

    __test__ = False  # not a pytest test class, despite the name


class RenderPaused(TactError):
    """A campaign paused itself because a template failed to render (``render-error``)."""

    code = "render-paused"


class DemoError(TactError):
    """The demo cannot use what it found (e.g. a campaign of its name from another template)."""

    code = "demo-error"


class BadOption(TactError):
    """An option value the command cannot use."""

    code = "bad-option"


class UnknownTopic(TactError):
    """No topic by that name."""

    code = "unknown-topic"


class HeaderError(TactError, ValueError):
    """A value cannot go into a header. The message names the header, never the value."""

    code = "header-error"


class HeaderInjection(HeaderError):
    """A CR, LF or NUL in a value bound for a header: refused, never stripped."""

    code = "header-injection"


class InvalidToken(TactError):
    """Forged, altered, truncated, or signed by an unknown key."""

    code = "invalid-token"


class ExpiredToken(InvalidToken):
    """Genuine but too old for what it opens."""

    code = "expired-token"


class RateLimited(TactError):
    """Too many confirmation emails for one address in 24 hours. Names no address."""

    code = "rate-limited"

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__(
            "too many confirmation emails were requested for this address in the last "
            "24 hours; nothing was sent, try again later"
        )
        #: How long until one more request would be accepted (for a Retry-After header).
        self.retry_after = retry_after


class NoticeNotSent(TactError):
    """The transport did not accept the notice (the reason names no address)."""

    code = "notice-not-sent"


class SegmentError(TactError):
    """Segments cannot be built or used as asked (too few contacts, no model yet...)."""

    code = "segment-error"


class _Where(Protocol):
    """Where a rule was read (``engine.segments.rules.Where``): enough to point at a column."""

    @property
    def source(self) -> str | None: ...

    def point(self, pos: int) -> tuple[int, int, str]: ...


class RuleError(SegmentError):
    """A rule or the rules file is wrong; the message points at the line and column."""

    code = "rule-error"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        excerpt: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.excerpt = excerpt
        where = ":".join(str(p) for p in (source, line, column) if p is not None)
        text = f"{where}: {message}" if where else message
        if excerpt is not None and column is not None:
            text += f"\n    {excerpt}\n    {' ' * (column - 1)}^"
        super().__init__(text)

    @classmethod
    def at(cls, where: _Where, pos: int, message: str) -> RuleError:
        line, column, excerpt = where.point(pos)
        return cls(message, source=where.source, line=line, column=column, excerpt=excerpt)


class ModelFormatError(SegmentError):
    """A stored or exported model is not a valid Tact segment model."""

    code = "model-format"


class DkimError(TactError):
    """A message cannot be signed (it is not a well-formed CRLF RFC 5322 message)."""

    code = "dkim-error"


class RowError(ValueError):
    """A row that cannot be imported; the message is safe to log (no personal data)."""


class ConnectionFailed(Exception):
    """Connecting (greeting, EHLO, STARTTLS, AUTH) did not work; ``detail`` names no one."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CsrfRejected(Exception):
    """The request did not come from one of our own pages."""


class PageTooLarge(RuntimeError):
    """A page rendered larger than the cap."""


class StaffError(TactError):
    """Staff accounts, sessions and API tokens (engine.staff)."""

    code = "staff-error"


class AuthenticationFailed(StaffError):
    """Not signed in: the same words whatever was wrong, so that a guess learns nothing."""

    code = "authentication-failed"


class AccountLocked(AuthenticationFailed):
    """Too many failed logins for this account; it opens again after ``retry_after``."""

    code = "account-locked"

    def __init__(self, retry_after: timedelta) -> None:
        minutes = max(1, round(retry_after.total_seconds() / 60))
        super().__init__(
            f"too many failed logins: this account is locked for about {minutes} min",
            hint="wait, or ask an admin (`tact staff unlock EMAIL`)",
        )
        self.retry_after = retry_after


class PermissionDenied(StaffError):
    """The role (or the API token's scope) does not allow the action; names the permission."""

    code = "permission-denied"


class StaffNotFound(StaffError):
    """No member of staff with that address or id."""

    code = "staff-not-found"


class StaffExists(StaffError):
    """A member of staff with that address exists already."""

    code = "staff-exists"


class InvalidStaffInput(StaffError):
    """A role, scope, password or name that cannot be used (the message says why)."""

    code = "invalid-staff-input"


class IdempotencyConflict(TactError):
    """An Idempotency-Key seen before with another request, or whose first request is still
    being answered."""

    code = "idempotency-conflict"
