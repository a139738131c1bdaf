"""SAN (Jin et al., AAAI 2020) for reid: SA-Enc + SA-Dec, SAN-PG pseudo textures."""
