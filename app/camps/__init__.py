"""Check-in camps (打卡营): a daily habit inside a group, with streaks and make-up cards."""
