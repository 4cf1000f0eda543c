"""memberships: services."""
