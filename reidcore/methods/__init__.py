"""Methods: the ``baseline`` (strong baseline). Importing this package imports no torch."""
