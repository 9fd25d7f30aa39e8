"""Transactional notices and double opt-in: emails Tact sends on a person's request.

Above render and delivery (a notice is rendered and sent) and above consent
(a confirmed opt-in is a consent event).
"""
