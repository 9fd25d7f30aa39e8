"""Engagement events: what recipients do with an email, recorded without surveillance.

This first slice tracks clicks in the ``aggregate`` mode (``tracking_mode``):

- :mod:`engine.engagement.tokens` signs and checks the compact ``/c/TOKEN`` click
  tokens (campaign id, variant key, link index, per-message key, composing time),
  with a key derived from the keyring's token keys under a label of its own;
- :mod:`engine.engagement.links` builds each campaign's link table (once per
  variant) and rewrites a composed message's block links to click tokens: the hook
  ``engine.render.compose.Composer`` calls;
- :mod:`engine.engagement.clicks` turns a token into its destination (read only from
  the link table: the endpoint cannot be an open redirect) and records one event row,
  flagged when it looks automated.

In the aggregate mode no event names a contact: the per-message key is a keyed hash
of the message's Message-ID, and no contact data is in the token.
"""
