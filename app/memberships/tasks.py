"""memberships: tasks."""
