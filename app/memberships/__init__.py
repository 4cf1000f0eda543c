"""VIP memberships: tiers, paid or granted memberships, and their lapse."""
