import math

import numpy as np
import pytest
from rsim.nar.noise import inject_noise, load_noisy_labels


def _labels(n: int = 200, c: int = 6, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    prev = np.array([0.05, 0.2, 0.4, 0.6, 0.9, 0.97])[:c]
    return (rng.random((n, c)) < prev).astype(np.uint8)


def test_subtractive_counts_are_exact_per_class():
    clean = _labels()
    out = inject_noise(clean, sub_rate=0.4, seed=3)
    p = clean.sum(0).astype(np.int64)
    np.testing.assert_array_equal(out.removed.sum(0), np.floor(p * 0.4).astype(int))
    assert out.added.sum() == 0
    assert out.noise_type == "subtractive"
    np.testing.assert_array_equal(out.clean, clean)  # clean labels kept untouched


def test_additive_counts_respect_the_95_percent_cap():
    clean = _labels()
    n = clean.shape[0]
    out = inject_noise(clean, add_rate=0.4, seed=3)
    p = clean.sum(0).astype(np.int64)
    expected = np.minimum(np.floor(p * 0.4), math.floor(0.95 * n) - p).clip(min=0)
    np.testing.assert_array_equal(out.added.sum(0), expected)
    assert (out.noisy.sum(0) <= max(math.floor(0.95 * n), p.max())).all()
    assert out.removed.sum() == 0


def test_mixed_uses_both_rates_on_the_clean_positives():
    clean = _labels()
    out = inject_noise(clean, add_rate=0.2, sub_rate=0.4, seed=0)
    p = clean.sum(0).astype(np.int64)
    n = clean.shape[0]
    np.testing.assert_array_equal(out.removed.sum(0), np.floor(p * 0.4))
    np.testing.assert_array_equal(out.added.sum(0), np.minimum(np.floor(p * 0.2), math.floor(0.95 * n) - p).clip(min=0))
    assert out.noise_type == "mixed"


def test_seeded_and_saved(tmp_path):
    clean = _labels()
    a = inject_noise(clean, add_rate=0.3, sub_rate=0.3, seed=7)
    b = inject_noise(clean, add_rate=0.3, sub_rate=0.3, seed=7)
    c = inject_noise(clean, add_rate=0.3, sub_rate=0.3, seed=8)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    assert not np.array_equal(a.noisy, c.noisy)
    path = a.save(tmp_path / "noisy.npz")
    back = load_noisy_labels(path)
    np.testing.assert_array_equal(back.noisy, a.noisy)
    np.testing.assert_array_equal(back.clean, clean)
    assert (back.add_rate, back.sub_rate, back.seed) == (0.3, 0.3, 7)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary


@pytest.mark.parametrize("kw", [{"add_rate": 1.5}, {"sub_rate": -0.1}, {"add_rate": float("nan")}])
def test_rates_outside_unit_interval_are_rejected(kw):
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        inject_noise(_labels(), **kw)


def test_all_empty_labels_and_bad_values_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="every label is empty"):
        inject_noise(np.zeros((5, 3)), sub_rate=0.4, source="toy.parquet")
    with pytest.raises(ValueError, match="0/1"):
        inject_noise(np.full((5, 3), 2), sub_rate=0.4)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_noisy_labels(tmp_path / "absent.npz")
    np.savez(tmp_path / "bad.npz", noisy=np.zeros((2, 2)))
    with pytest.raises(KeyError, match="clean"):
        load_noisy_labels(tmp_path / "bad.npz")


def test_real_bigearthnet_label_distribution():
    """Noise counts on the real 19-class labels of a slice of the reBEN train split."""
    from pathlib import Path

    meta = Path(__file__).resolve().parents[3] / "shared" / "data" / "benv2" / "metadata" / "metadata.parquet"
    if not meta.is_file():
        pytest.skip("shared sample data absent")
    import pyarrow.parquet as pq
    from rsim.core.data import PatchTable

    batch = next(
        pq.ParquetFile(meta).iter_batches(batch_size=20000, columns=["patch_id", "labels", "split", "s1_name"])
    )
    frame = batch.to_pandas()
    frame = frame[frame["split"] == "train"]
    clean = PatchTable.from_metadata(frame, "train").labels
    out = inject_noise(clean, add_rate=0.4, sub_rate=0.4, seed=0)
    np.testing.assert_array_equal(out.removed.sum(0), np.floor(clean.sum(0) * 0.4))
    assert 0 < out.added.sum() <= math.floor(0.4 * clean.sum())
