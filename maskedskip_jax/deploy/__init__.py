"""From a trained model to use elsewhere: bundles, export, prediction, reconstruction, overlays, PyTorch import."""
