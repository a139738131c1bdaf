"""Losses: cross-entropy with label smoothing, batch-hard triplet, center loss, and the
recipe's weighted sum. Importing this package imports no torch; use ``reidcore.losses.losses``."""
