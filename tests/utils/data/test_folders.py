"""Data folders: explicit class map, seeded stratified splits that keep duplicates together, safe preparation."""
import shutil
import tarfile

import numpy as np
import pytest

from utils.data.folders import load_image_folder, scan_image_folder, split_train_val
from utils.data.prepare import prepare_dataset


def test_fake_is_label_one_whatever_the_folder_order(cifake_test_sample):
    items = scan_image_folder(cifake_test_sample)
    assert {label for path, label in items if path.parent.name == "FAKE"} == {1}
    assert {label for path, label in items if path.parent.name == "REAL"} == {0}


def test_folder_without_the_class_folders_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    with pytest.raises(FileNotFoundError, match="REAL/ and FAKE/"):
        scan_image_folder(tmp_path)


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.array([0] * 500 + [1] * 500)
    digests = [str(i) for i in range(1000)]
    train, val = split_train_val(labels, digests, 0.1, seed=3)
    again_train, again_val = split_train_val(labels, digests, 0.1, seed=3)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    assert len(val) == 100 and labels[val].sum() == 50
    assert not set(train) & set(val) and len(train) + len(val) == 1000
    _, other_val = split_train_val(labels, digests, 0.1, seed=4)
    assert not np.array_equal(val, other_val)


def test_byte_identical_files_never_straddle_the_split():
    labels = np.array([1] * 200)
    digests = [f"pair{i // 2}" for i in range(200)]  # 100 duplicate pairs
    train, val = split_train_val(labels, digests, 0.25, seed=0)
    val_digests = {digests[i] for i in val}
    assert not val_digests & {digests[i] for i in train}


def test_loader_returns_uint8_images_and_labels(cifake_test_sample):
    data = load_image_folder(cifake_test_sample, 32, cache_dir=None, workers=1)
    assert data.images.shape == (200, 32, 32, 3) and str(data.images.dtype) == "torch.uint8"
    assert int(data.labels.sum()) == 100


def test_prepare_from_an_archive_lays_out_and_caches_the_dataset(cifake_test_sample, tmp_path):
    source = tmp_path / "src" / "cifake"
    for split in ("train", "test"):
        shutil.copytree(cifake_test_sample, source / split)
    archive = tmp_path / "cifake.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(source, arcname="cifake")
    root = prepare_dataset(archive, tmp_path / "data", cache_dir=tmp_path / "cache")
    assert root == tmp_path / "data" / "cifake"
    assert len(scan_image_folder(root / "train")) == 200
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_prepare_refuses_an_archive_that_escapes_its_folder(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as handle:
        handle.add(payload, arcname="../../escaped.txt")
    with pytest.raises(Exception):
        prepare_dataset(evil, tmp_path / "data", cache_dir=None)
    assert not (tmp_path.parent / "escaped.txt").exists()
