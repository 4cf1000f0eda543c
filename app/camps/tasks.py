"""camps: tasks."""
