"""loyalty: services."""
