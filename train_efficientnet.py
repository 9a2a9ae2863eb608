"""Train torchvision's EfficientNet-B0 (from scratch, or --pretrained) on a REAL/FAKE folder.

Example: python train_efficientnet.py --data-dir data/cifake/train --pretrained torchvision
"""
from utils.training import main

if __name__ == "__main__":
    main("efficientnet", description=__doc__)
