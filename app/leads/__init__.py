"""Leads: lead-capture forms shared by link and QR code, their submissions, and the
pipeline staff work from new lead to enrolment."""
