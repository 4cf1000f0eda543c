"""Loyalty: points and rewards, and referrals."""
