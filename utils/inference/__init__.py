"""What a model is fed and what its output means: preprocessing, checkpoints, runtimes, tiling, calibration, Grad-CAM."""
