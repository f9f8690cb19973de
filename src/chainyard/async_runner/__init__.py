"""The async runner: in every server, claims queued async requests, calls their chains through
the server's own gateway, records the outcomes and delivers the webhooks (loop.py)."""
