import numpy as np
import pytest
from rsim.slimming import analyse_features, explained_variance, feature_correlation, participation_ratio


def test_low_rank_features_need_few_components():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 2)) * [3.0, 1.0]
    x = z @ rng.standard_normal((2, 16)) + 1e-6 * rng.standard_normal((200, 16))
    cum, n90, n95 = explained_variance(x)
    assert n90 <= 2 and n95 <= 2 and cum[-1] == pytest.approx(1.0)
    assert 1.0 < participation_ratio(x) < 2.0


def test_isotropic_features_are_full_rank():
    x = np.random.default_rng(1).standard_normal((4000, 8))
    _, n90, n95 = explained_variance(x)
    assert n90 >= 7 and n95 == 8
    assert participation_ratio(x) == pytest.approx(8, rel=0.05)
    assert participation_ratio(x, "entropy") == pytest.approx(8, rel=0.05)
    assert feature_correlation(x)[0] < 0.05


def test_duplicated_features_are_correlated():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((100, 1))
    x = np.hstack([base, -2 * base, base + 1e-3 * rng.standard_normal((100, 1)), np.ones((100, 1))])
    mean_r, values = feature_correlation(x)  # the constant column is left out
    assert mean_r == pytest.approx(1.0, abs=1e-3) and values.shape == (6,)
    a = analyse_features(x)
    assert a.n90 == 1 and a.participation_ratio == pytest.approx(1.0, abs=1e-3)


def test_bad_features_raise():
    with pytest.raises(ValueError, match="NaN"):
        explained_variance(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="N >= 2"):
        participation_ratio(np.ones((1, 4)))
    with pytest.raises(ValueError, match="kind"):
        participation_ratio(np.eye(3), "other")
