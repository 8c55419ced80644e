"""Outbound event webhooks (issue #21, DESIGN §15): an instance subscribes URLs to its events."""
