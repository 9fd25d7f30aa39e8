"""The web face: one-click unsubscribe, the preference center, sign-up, export and erasure.

A face like the CLI: it calls the engine's plain functions inside one
transaction per request and holds no logic of its own about consent. See
``engine.web.app`` for the routes and the headers every page carries.
"""
