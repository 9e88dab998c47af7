"""Video data: reading and writing video files (datasets come with the training engine)."""
