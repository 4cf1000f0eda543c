"""loyalty: queries."""
