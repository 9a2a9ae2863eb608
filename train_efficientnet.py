"""Train torchvision's EfficientNet-B0 (from scratch, or --pretrained) on a REAL/FAKE folder.

Example: python train_efficientnet.py --data-dir data/cifake/train --pretrained torchvision
"""
from utils.training.folders import run_cli

if __name__ == "__main__":
    run_cli("efficientnet", __doc__)
