"""The web face: one-click unsubscribe, the preference center, sign-up, export and erasure.

A face like the CLI: each handler parses the request, calls one use-case of
:mod:`engine.app` (which runs its own transaction), and renders the result. It
holds no logic about consent, runs no SQL and builds nothing of its own: the
:class:`engine.runtime.Runtime` does. See ``engine.web.app`` for the routes and
the headers every page carries.
"""
