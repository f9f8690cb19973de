"""chainyard: serve multi-step inference pipelines (chains) on your own machines."""

__version__ = "0.1.0"
