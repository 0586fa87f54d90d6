"""maskedskip_jax: kernel-masked video anomaly detection (MaskedSkipUNet) in JAX/Flax."""

__version__ = "0.1.0"
