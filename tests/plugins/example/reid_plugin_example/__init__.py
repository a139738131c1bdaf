"""A minimal third-party reid plugin, written only from the README's "Writing a plugin"."""
