"""Background jobs of this domain (none yet)."""
