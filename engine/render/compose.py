"""From a recipient to message bytes: blocks, brand frame, links, MIME, optional DKIM.

One ``Composer`` per campaign holds everything constant (compiled templates,
the encoded header frame, the topic's List-Id); ``compose`` does the per
recipient work. The demo, the preview and the sending pipeline all use it, so
there is one way an email is made.

A ``links`` hook (``LinkHook``), when given, rewrites the block links of each
rendered message (click tracking, ``engine.engagement.links``); it is handed the
message's own unsubscribe and preference links, which it must leave as they are.
Without one, links go out as the template wrote them. List-Unsubscribe is built from
the links, never from the rewritten parts.

``compose(..., locale=...)`` takes the contact's locale (or a language tag, for a
preview); the email is written in the first language of its chain in which the
campaign is complete (``engine.render.locales``), and the "why you got this" line,
the footer's words and ``<html lang>`` are in that same language.
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
from engine.render.locales import primary
from engine.render.mime import MessageTemplate, message_id_for
from engine.render.template import Recipient, Rendered, TemplateRenderer


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...


class LinkHook(Protocol):
    """Rewrites one rendered message's links (html and text parts), per message."""

    def rewrite(
        self, rendered: Rendered, *, segment: str | None, message_id: str, keep: frozenset[str]
    ) -> Rendered: ...


@dataclass(frozen=True)
class Composed:
    message_id: str
    data: bytes
    rendered: Rendered


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
        links: LinkHook | None = None,
    ) -> None:
        self.settings = settings
        self.links = links
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
        #: The "why you got this" line in each language the campaign is written in.
        self._why = {
            lang: self.renderer.words_in(lang).why_line(
                topic=self.topic.title_in(primary(lang)), brand=brand.name
            )
            for lang in self.renderer.languages
        }

    def language_for(self, locale: str | None) -> str:
        """The language an email to a contact with ``locale`` is written in."""
        return self.renderer.language_for(locale)

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
        track: bool = True,
    ) -> Composed:
        """One recipient's message; ``message_id`` overrides the template's (a campaign's
        outbox fixes its own, so two campaigns of one template stay two messages).
        ``track`` False: the links hook leaves this message alone (the recipient's
        tracking mode is off)."""
        lang = self.renderer.language_for(locale)
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
        if self.links is not None and track:
            rendered = self.links.rewrite(
                rendered,
                segment=segment,
                message_id=message_id,
                keep=frozenset((links.unsubscribe_url, links.preferences_url)),
            )
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
            content_language=rendered.lang,
        )
        if self.dkim is not None:
            data = self.dkim.sign(data)
        return Composed(message_id=message_id, data=data, rendered=rendered)
