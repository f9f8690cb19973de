"""`chainyard serve` as processes with one job each: a controller (runtime, control loops, lease)
and workers (API and gateway) sharing one listening socket. See docs/data-plane.md."""
