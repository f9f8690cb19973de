"""Turns the gateway's in-flight counts into replica counts, with the pure policy of
`domain.autoscaling_policy`."""
