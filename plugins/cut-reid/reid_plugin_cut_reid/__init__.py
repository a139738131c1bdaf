"""reid-plugin-cut-reid: Synth-ReID (CUT translation + joint re-ID) for reid."""
