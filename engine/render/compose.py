"""From a recipient to message bytes: blocks, brand frame, links, MIME, optional DKIM.

One ``Composer`` per campaign holds everything constant (compiled templates,
the encoded header frame, the topic's List-Id); ``compose`` does the per
recipient work. The demo, the preview and the sending pipeline all use it, so
there is one way an email is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from uuid import UUID

from engine.config import Settings
from engine.consent.topics import Topic, cached_topics
from engine.links.tokens import TokenSigner
from engine.links.urls import links_for
from engine.render.mime import MessageTemplate, message_id_for
from engine.render.template import Recipient, Rendered, TemplateRenderer


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class Composed:
    message_id: str
    data: bytes
    rendered: Rendered


WHY = {
    "en": "You are receiving this because you subscribed to {topic} from {brand}.",
    "zh": "您收到此邮件是因为您订阅了{brand}的{topic}。",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "brand"


class Composer:
    def __init__(
        self,
        settings: Settings,
        campaign: str | Path,
        signer: TokenSigner,
        *,
        dkim: Signer | None = None,
    ) -> None:
        self.settings = settings
        self.renderer = TemplateRenderer(settings.templates_dir, campaign)
        self.spec = self.renderer.spec
        self.topic: Topic = cached_topics(settings.resolved_topics_file).get(self.spec.topic)
        brand = self.renderer.brand
        self.domain = brand.sender_address.rpartition("@")[2]
        self.signer = signer
        self.dkim = dkim
        self.list_id = f"{brand.name} {self.topic.title} <{self.topic.name}.{self.domain}>"
        self.template = MessageTemplate(
            from_addr=brand.sender_address,
            from_name=brand.sender_name,
            reply_to=brand.reply_to,
            list_id=self.list_id,
            feedback_id=f"{self.spec.name}:{self.topic.name}:{_slug(brand.name)}",
        )
        self._why = {
            lang: text.format(topic=self.topic.title_in(lang), brand=brand.name)
            for lang, text in WHY.items()
        }

    def message_id(self, contact_id: UUID) -> str:
        return message_id_for(self.spec.name, contact_id, self.domain)

    def compose(
        self,
        *,
        contact_id: UUID,
        public_id: UUID,
        to_addr: str,
        fields: dict[str, str | None],
        segment: str | None,
        locale: str | None,
        date: datetime | None = None,
        message_id: str | None = None,
    ) -> Composed:
        """One recipient's message; ``message_id`` overrides the template's (a campaign's
        outbox fixes its own, so two campaigns of one template stay two messages)."""
        lang = "zh" if (locale or "").lower().startswith("zh") else "en"
        links = links_for(
            self.settings, self.signer, public_id, topic=self.topic.name, campaign=self.spec.name
        )
        rendered = self.renderer.render(
            Recipient(
                segment=segment,
                lang=lang,
                fields=fields,
                unsubscribe_url=links.unsubscribe_url,
                preferences_url=links.preferences_url,
                why=self._why[lang],
            )
        )
        message_id = message_id or self.message_id(contact_id)
        data = self.template.build(
            to_addr=to_addr,
            to_name=None,
            subject=rendered.subject,
            date=date or datetime.now(UTC),
            message_id=message_id,
            text=rendered.text,
            html=rendered.html,
            unsubscribe_https=links.unsubscribe_url,
            unsubscribe_mailto=links.unsubscribe_mailto,
        )
        if self.dkim is not None:
            data = self.dkim.sign(data)
        return Composed(message_id=message_id, data=data, rendered=rendered)
