"""Webhooks of async requests: their payload and signature (Baseten's), the checks of their
targets, and their delivery. Nothing here reads the store: callers pass the secrets and the
policy (docs/async-inference.md)."""
