"""Training: state and factories, the step, the loop and its progress, optimiser, checkpoints, sharding, inputs."""
