"""Inference: run_remote routes, replica routing and wake-from-zero holding."""
