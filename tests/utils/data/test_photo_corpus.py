"""The photo corpus: its manifest, the group split, generator families and the content-balancing weights."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, PROJECT_ROOT
from utils.data.photo_corpus import (FAMILIES, GENERATOR_FAMILIES, OTHER_FAMILY, PhotoRecord, content_balancing_weights,
                                     read_manifest, split_by_group)

SHARED_CORPUS = PROJECT_ROOT / "data" / "photos-v1"


def record(index: int, label: int, group: str, source: str = "s", content: str = "photo",
           generator: str = "photo") -> PhotoRecord:
    return PhotoRecord(Path(f"{index}.jpg"), label, group, source, generator, content, "JPEG", 224, 224, 90.0)


def synthetic_corpus(seed: int = 0) -> list[PhotoRecord]:
    """600 crops of 400 groups (some groups cut into 2-4 crops), two sources per class, mixed content."""
    rng = np.random.default_rng(seed)
    records = []
    for g in range(400):
        label = g % 2
        crops = int(rng.choice([1, 1, 2, 4]))
        content = ["photo", "face", "art"][int(rng.integers(3))] if label else ["photo", "photo", "art", "face"][g // 2 % 4]
        for _ in range(crops):
            records.append(record(len(records), label, f"g{g}", source=f"src{label}{g % 4 // 2}", content=content))
    return records


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_group_lies_on_both_sides_of_the_split(seed):
    records = synthetic_corpus(seed)
    train, val = split_by_group(records, 0.15, seed)
    assert len(train) + len(val) == len(records) and not set(train) & set(val)
    assert not {records[i].group for i in train} & {records[i].group for i in val}


def test_the_split_is_seeded_and_stratified_by_label_and_source():
    records = synthetic_corpus()
    train, val = split_by_group(records, 0.2, 0)
    assert np.array_equal(val, split_by_group(records, 0.2, 0)[1])
    assert not np.array_equal(val, split_by_group(records, 0.2, 1)[1])
    groups = Counter((r.label, r.source) for r in {records[i].group: records[i] for i in range(len(records))}.values())
    val_groups = Counter((r.label, r.source) for r in {records[i].group: records[i] for i in val}.values())
    for stratum, count in groups.items():
        assert val_groups[stratum] == round(count * 0.2), "each (label, source) gives its share of groups"


def test_content_weights_give_both_classes_the_same_content_mix_and_half_the_weight():
    records = synthetic_corpus()
    weights = content_balancing_weights(records)
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    labels = np.array([r.label for r in records])
    mixes = []
    for label in (0, 1):
        in_class = labels == label
        assert weights[in_class].sum() == pytest.approx(0.5)
        mixes.append({c: weights[in_class & np.array([r.content == c for r in records])].sum() / 0.5
                      for c in ("photo", "face", "art")})
    assert mixes[0] == pytest.approx(mixes[1])


def test_a_source_image_weighs_the_same_however_many_crops_it_was_cut_into():
    records = [record(0, 0, "a"), record(1, 0, "b"), record(2, 0, "b"), record(3, 0, "b"), record(4, 1, "c")]
    weights = content_balancing_weights(records)
    assert weights[0] == pytest.approx(weights[1:4].sum())


def test_every_corpus_generator_has_a_family():
    assert set(GENERATOR_FAMILIES.values()) | {OTHER_FAMILY} == set(FAMILIES)
    assert record(0, 1, "g", generator="StyleGAN2").family == "GAN"
    assert record(0, 1, "g", generator="GLIDE").family == OTHER_FAMILY
    assert record(0, 0, "g", generator="camera").family is None


def test_a_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="photos-v1"):
        read_manifest(tmp_path)


def test_a_manifest_with_an_unknown_label_is_refused(tmp_path):
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "source_repo", "generator", "content", "original_format", "original_width",
                         "original_height", "original_jpeg_quality", "group"])
        writer.writerow(["x.jpg", "MAYBE", "r", "g", "photo", "JPEG", 1, 1, "", "g1"])
    with pytest.raises(ValueError, match="MAYBE"):
        read_manifest(tmp_path)


@pytest.mark.skipif(not (SHARED_CORPUS / "manifest.csv").is_file(), reason="photos-v1 is not unpacked under data/")
def test_the_real_corpus_split_keeps_every_group_on_one_side():
    records = read_manifest(SHARED_CORPUS)
    train, val = split_by_group(records, 0.15, 0)
    assert not {records[i].group for i in train} & {records[i].group for i in val}
    assert {records[i].source for i in val} == {r.source for r in records}


def test_prepare_data_unpacks_the_photo_corpus_from_an_archive_and_checks_it(tmp_path):
    import tarfile

    from utils.data.prepare import is_photo_corpus_source, prepare_photo_corpus

    sample = FIXTURES / "photo_val_sample"
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(sample, arcname="photos-v1")
    assert is_photo_corpus_source(archive) and is_photo_corpus_source(sample)
    assert not is_photo_corpus_source(FIXTURES / "cifake_test_sample")
    target = prepare_photo_corpus(archive, tmp_path / "data" / "photos-v1")
    assert len(read_manifest(target)) == 64
    (target / "REAL" / sorted(p.name for p in (target / "REAL").iterdir())[0]).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        prepare_photo_corpus(target, target)
