"""Discriminators: image discriminators and video (clip) discriminators."""
