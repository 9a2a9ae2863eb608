"""Prepare CIFAKE or the photo corpus: extract an archive (or link a folder), check it, and pre-decode CIFAKE.

Examples: python prepare_data.py --source ../shared/data/cifake.tar.gz
          python prepare_data.py --source ../shared/data/photos-v1.tar.gz   (manifest.csv beside REAL/ and FAKE/;
          lands at config data.photos_dir)
Get CIFAKE yourself from Kaggle ("CIFAKE: Real and AI-Generated Synthetic Images", Bird & Lotfi); the archive or
its unpacked folder both work, as long as it holds train/{REAL,FAKE} and test/{REAL,FAKE}.
"""
from __future__ import annotations

import argparse
import logging

from utils.config import load_config, project_path
from utils.data.prepare import is_photo_corpus_source, prepare_dataset, prepare_photo_corpus
from utils.entry_point import USER_ERRORS, run_entry_point


def main(argv: list[str] | None = None) -> None:
    """Parse flags and prepare the dataset."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="cifake or photos-v1 .tar.gz/.zip archive, or a folder")
    parser.add_argument("--dest", default="data", help="data folder (default: data/)")
    parser.add_argument("--no-cache", action="store_true", help="skip pre-decoding into the image cache")
    args = parser.parse_args(argv)
    config = load_config()
    if is_photo_corpus_source(args.source):
        print(f"photo corpus ready at {prepare_photo_corpus(args.source, project_path(config['data']['photos_dir']))}")
        return
    cache_dir = None if args.no_cache else project_path(config["data"]["cache_dir"])
    root = prepare_dataset(args.source, project_path(args.dest), cache_dir)
    print(f"dataset ready at {root}")


if __name__ == "__main__":
    run_entry_point(main, (FileExistsError, *USER_ERRORS))
