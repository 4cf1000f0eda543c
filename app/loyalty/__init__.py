"""Loyalty: points and rewards, VIP memberships and referrals."""
