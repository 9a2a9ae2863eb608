"""Shared, Flask-free building blocks: data, preprocessing, metrics, calibration, checkpoints, Grad-CAM."""
