"""User chains written with `truss_chains`: discovery (for push) and hosting (in replicas).

Everything that touches truss_chains' private API lives in `truss_compat` (and `kinds`, which
tells chainlets, models and the classes chainyard refuses apart), so that a new truss release is
adapted in one place.
"""
