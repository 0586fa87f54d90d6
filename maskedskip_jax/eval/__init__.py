"""Evaluation: the streaming scorer, post-processing, frame and region metrics, baselines, the hybrid score,
reports, plots and diagnostics."""
