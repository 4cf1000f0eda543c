"""memberships: forms."""
