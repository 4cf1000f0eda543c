"""Parent and student groups (社群): communities, feeds and moderation."""
