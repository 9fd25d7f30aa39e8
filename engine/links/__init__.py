"""Signed links: the tokens every email and page carries, and the URLs built from them.

Below render and consent: the renderer puts signed links into a message, the
preference center checks them, and neither needs the other to do so.
"""
