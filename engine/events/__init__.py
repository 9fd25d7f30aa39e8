"""Inbound events: bounces, complaints and ``mailto:`` unsubscribes received by mail.

Each turns into a suppression or a consent change; the package sits above
consent and the vault, and nothing below it imports it.
"""
