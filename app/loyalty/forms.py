"""loyalty: forms."""
