"""Read-only queries of payments (none yet: the campaigns' queries join payments)."""
