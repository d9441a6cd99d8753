import pytest
import torch
from rsim.georank.baselines import GeographyMSE, SoftTargetNTXent, Tile2VecTriplet
from rsim.georank.geo import haversine_km
from rsim.georank.tasks import METHODS, GeoRankConfig


def _coords():
    # two clusters 10 km apart internally, ~800 km between them
    return torch.tensor(
        [[50.0, 10.0], [50.05, 10.05], [50.0, 10.1], [45.0, 18.0], [45.05, 18.05], [45.0, 18.1]], dtype=torch.float64
    )


def test_geography_mse_matches_formula():
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = _coords()
    zn = torch.nn.functional.normalize(z, dim=1)
    pred = (1 - zn @ zn.T) / 0.04 - 0.3
    target = haversine_km(c) / 8000
    off = ~torch.eye(6, dtype=torch.bool)
    expect = ((pred - target) ** 2)[off].mean()
    torch.testing.assert_close(GeographyMSE(0.04, 8000, 0.3)(z, c), expect)


def test_soft_ntxent_prefers_geographic_neighbours():
    c = _coords()
    cluster = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3, dtype=torch.float64)
    loss = SoftTargetNTXent(temperature=0.1)
    assert float(loss(cluster, c)) < float(loss(cluster.flip(1)[[0, 3, 1, 4, 2, 5]], c))
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    loss(z, c).backward()
    assert torch.isfinite(z.grad).all()


def test_tile2vec_triplets():
    c = _coords()
    good = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3, dtype=torch.float64)
    assert float(Tile2VecTriplet(margin=1.0)(good, c)) == pytest.approx(0.0)
    bad = good[[0, 3, 1, 4, 2, 5]]
    assert float(Tile2VecTriplet(margin=1.0)(bad, c)) > 1.0
    far = torch.tensor([[0.0, 0.0], [10.0, 10.0]], dtype=torch.float64)  # no positive within 15 km
    z = torch.randn(2, 3, requires_grad=True)
    out = Tile2VecTriplet()(z, far)
    assert float(out) == 0.0 and out.requires_grad


@pytest.mark.parametrize("kind", ["mse", "soft_ntxent", "tile2vec"])
def test_baselines_plug_into_ssl_modules(kind):
    model = METHODS["simclr"](
        backbone="resnet10t", in_channels=3, proj_hidden_dim=16, proj_dim=8, georank=GeoRankConfig(kind=kind)
    )
    views = [torch.randn(6, 3, 32, 32) for _ in range(2)]
    ssl, emb = model.ssl_step(views)
    geo = model.georank_loss(emb, _coords())
    assert geo is not None and torch.isfinite(geo) and torch.isfinite(ssl)
    with pytest.raises(ValueError, match="kind"):
        GeoRankConfig(kind="gassl").loss()  # type: ignore[arg-type]
