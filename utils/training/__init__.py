"""Training runs: the folder and photo-corpus loops, distillation, settings, calibration fitting, checkpoint writing."""
