"""Losses: cross-entropy with label smoothing, batch-hard triplet (margin or soft margin),
center loss, circle loss, ArcFace / CosFace heads, AGW's weighted regularised triplet, and
the recipe's weighted sum. Importing this package imports no torch; use
``reidcore.losses.losses``."""
