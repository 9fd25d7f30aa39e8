"""People: the contact rows and what is done to them as a whole: import, export, erasure.

Above consent (an import records imported consent, an erasure withdraws it) and
below the application layer. Keys and decryption stay in :mod:`engine.vault`.
"""
