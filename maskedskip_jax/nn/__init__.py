"""The network and the pure-jax maths on its tensors: layers, conv lowering, SSMCTB, the UNet family,
losses, motion maps and score maps. Nothing here reads a config."""
