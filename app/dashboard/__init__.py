"""The staff dashboard: today's work, the period's figures, the funnel from first touch to
paid enrolment, and community health. It reads the other domains' rows and writes none."""
