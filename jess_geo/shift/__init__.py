"""Shift detection: how far a scene's network features are from the training data's."""
