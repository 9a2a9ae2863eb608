"""Training data: REAL/FAKE folders, the photo corpus and its group split, caches, augmentation and corruptions."""
