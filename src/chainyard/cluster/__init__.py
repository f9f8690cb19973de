"""Several servers on one database: leadership of the control loops, shared replica endpoints."""
