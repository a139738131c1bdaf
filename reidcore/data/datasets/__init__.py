"""The core's dataset components; each module documents its on-disk layout and citation."""
