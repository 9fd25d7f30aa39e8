"""What an SMTP reply means for a message, said without naming anyone.

Shared by the transport (``smtp.py``: connecting) and the conversation
(``smtp_mux.py``: mail transactions). The recipient is personal data: no detail
kept from a reply ever names an address, even when the server's reply does.
"""

from __future__ import annotations

import re

from engine.delivery.base import DeliveryResult, DeliveryStatus, OutgoingMessage

#: Anything that looks like an address in a server reply is replaced by this.
_ADDRESS = re.compile(r"<?[^\s<>@\"']+@[^\s<>@\"']+>?")
MAX_DETAIL = 200


def scrub(text: str, *addresses: str) -> str:
    """A server reply made safe to store and log: no address left in it, bounded length."""
    for address in addresses:
        if address:
            text = text.replace(address, "<address>")
    text = _ADDRESS.sub("<address>", text)
    text = " ".join(text.split())
    return text[:MAX_DETAIL]


def reply_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def classify(code: int, text: bytes | str, message: OutgoingMessage) -> DeliveryResult:
    """2xx sent, 5xx bounced (the recipient's or the message's), anything else deferred."""
    detail = scrub(f"{code} {reply_text(text)}", message.sender, message.recipient)
    if 200 <= code < 300:
        return DeliveryResult(DeliveryStatus.SENT, detail)
    if 500 <= code < 600:
        return DeliveryResult(DeliveryStatus.BOUNCED, detail)
    return DeliveryResult(DeliveryStatus.DEFERRED, detail)


def sender_refused(code: int, text: bytes | str, message: OutgoingMessage) -> DeliveryResult:
    """A refusal of MAIL FROM: a 4xx is transient; anything else is our configuration.

    Never a bounce: the sender is ours, so a permanent refusal must not suppress
    the recipient. It comes back FAILED, which counts towards the campaign's pause.
    """
    if 400 <= code < 500:
        return classify(code, text, message)
    detail = scrub(f"{code} sender refused: {reply_text(text)}", message.sender, message.recipient)
    return DeliveryResult(DeliveryStatus.FAILED, detail)
