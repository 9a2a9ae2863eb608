"""Model input and output: preprocessing, checkpoints, runtimes, tiling, calibration, the ensemble, Grad-CAM."""
