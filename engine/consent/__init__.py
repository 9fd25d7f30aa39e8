"""Consent: topics, the append-only consent ledger, preferences, suppression."""
