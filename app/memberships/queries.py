"""memberships: queries."""
