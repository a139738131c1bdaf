"""FlipReID (Ni & Rahtu, 2021) for reid: the flipping structure, the flipping loss, and
flip-consistent inference, as an installable plugin."""
