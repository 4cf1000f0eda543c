"""Campaigns: group buys (拼团) with teams, card holds, settlement and failure."""
