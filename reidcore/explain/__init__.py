"""Activation maps of a run's network (``reid explain``)."""
