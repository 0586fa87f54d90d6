"""Data sources, clip plans and streaming backends for maskedskip_jax."""
