"""Courses (trial and regular), their lessons, registrations and seats, attendance and
enrolments."""
