"""Prepare CIFAKE for training and evaluation: extract an archive (or link a folder) and pre-decode it.

Example: python prepare_data.py --source ../shared/data/cifake.tar.gz
Get CIFAKE yourself from Kaggle ("CIFAKE: Real and AI-Generated Synthetic Images", Bird & Lotfi); the archive or
its unpacked folder both work, as long as it holds train/{REAL,FAKE} and test/{REAL,FAKE}.
"""
from __future__ import annotations

import argparse
import logging

from utils.config import load_config, project_path
from utils.data_prep import prepare_dataset
from utils.entry_point import USER_ERRORS, run_entry_point


def main(argv: list[str] | None = None) -> None:
    """Parse flags and prepare the dataset."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="cifake .tar.gz/.zip archive, or an unpacked folder")
    parser.add_argument("--dest", default="data", help="data folder (default: data/)")
    parser.add_argument("--no-cache", action="store_true", help="skip pre-decoding into the image cache")
    args = parser.parse_args(argv)
    config = load_config()
    cache_dir = None if args.no_cache else project_path(config["data"]["cache_dir"])
    root = prepare_dataset(args.source, project_path(args.dest), cache_dir)
    print(f"dataset ready at {root}")


if __name__ == "__main__":
    run_entry_point(main, (FileExistsError, *USER_ERRORS))
