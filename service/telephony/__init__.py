"""Carrier edges: wire messages ↔ neutral caller events and commands."""
