"""Train the custom CNN (ArtifactCNN) on a REAL/FAKE folder and write a calibrated checkpoint.

Example: python train_cnn.py --data-dir data/cifake/train --epochs 8
"""
from utils.training.folders import run_cli

if __name__ == "__main__":
    run_cli("cnn", __doc__)
