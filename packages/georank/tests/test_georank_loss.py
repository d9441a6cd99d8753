import math

import numpy as np
import pytest
import torch
from pyproj import Geod
from rsim.georank.geo import EARTH_RADIUS_KM, euclidean_latlon, haversine_km, max_distance_km
from rsim.georank.losses import GeoRankLoss, combine, drop_diagonal


def test_haversine_matches_spherical_geodesic():
    g = np.random.default_rng(0)
    a = np.stack([g.uniform(-80, 80, 12), g.uniform(-180, 180, 12)], 1)
    ours = haversine_km(torch.tensor(a, dtype=torch.float64)).numpy()
    sphere = Geod(a=EARTH_RADIUS_KM * 1000, b=EARTH_RADIUS_KM * 1000)
    for i in range(12):
        for j in range(12):
            _, _, d = sphere.inv(a[i, 1], a[i, 0], a[j, 1], a[j, 0])
            assert ours[i, j] == pytest.approx(d / 1000, abs=1e-6)
    antipode = haversine_km(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 180.0]]))
    assert float(antipode) == pytest.approx(max_distance_km(), rel=1e-6)


def test_haversine_rejects_bad_coords():
    with pytest.raises(ValueError, match="NaN"):
        haversine_km(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="latitude"):
        haversine_km(torch.tensor([[120.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        haversine_km(torch.zeros(3))


def test_drop_diagonal():
    m = torch.arange(16.0).view(4, 4)
    expect = torch.tensor([[1, 2, 3], [4, 6, 7], [8, 9, 11], [12, 13, 14.0]])
    assert torch.equal(drop_diagonal(m), expect)


def _line(n=6):
    idx = torch.arange(n, dtype=torch.float64) ** 2
    coords = torch.stack([torch.zeros(n, dtype=torch.float64), idx * 0.1], 1)  # on the equator
    theta = idx * 0.01
    return coords, theta


def test_perfectly_ordered_embeddings_give_zero_loss():
    coords, theta = _line()
    z = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    loss = GeoRankLoss(soft_rank_eps=1e-6, soft_margin=0.0)(z, coords)
    assert float(loss) == pytest.approx(0.0, abs=1e-8)
    reversed_z = torch.stack([torch.cos(-theta.flip(0) * 3), torch.sin(theta.flip(0) * 3)], 1)
    assert float(GeoRankLoss(soft_rank_eps=1e-6, soft_margin=0.0)(reversed_z, coords)) > 0.05


def _reference(z, coords, tau, lo, hi, margin, l1=False):
    """Plain numpy loop of the issue's steps 1-6 with hard ranks (valid for a tiny soft-rank strength)."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    b = len(z)
    sigma = math.sqrt(sum(k * k for k in range(1, b)))
    sphere = Geod(a=EARTH_RADIUS_KM * 1000, b=EARTH_RADIUS_KM * 1000)
    errs = []
    for i in range(b):
        others = [j for j in range(b) if j != i]
        sims = np.array([z[i] @ z[j] / tau for j in others])
        dists = np.array([sphere.inv(coords[i, 1], coords[i, 0], coords[j, 1], coords[j, 0])[2] / 1000 for j in others])
        pred = np.empty(b - 1)
        pred[np.argsort(-sims)] = np.arange(1, b)  # most similar -> 1
        target = np.empty(b - 1)
        target[np.argsort(dists)] = np.arange(1, b)  # nearest -> 1
        pred, target = pred / np.linalg.norm(pred), target / np.linalg.norm(target)
        e = np.abs(pred - target) if l1 else (pred - target) ** 2
        e[e <= (margin / sigma if l1 else (margin / sigma) ** 2)] = 0
        errs += [e[k] for k in range(b - 1) if lo <= dists[k] <= hi]
    return float(np.mean(errs)) * sigma


@pytest.mark.parametrize(
    ("lo", "hi", "margin", "l1"), [(0, 3000, 1.0, False), (0, 1e9, 0.0, False), (100, 2500, 2.0, True)]
)
def test_loss_matches_reference(lo, hi, margin, l1):
    g = np.random.default_rng(1)
    coords = np.stack([g.uniform(35, 65, 10), g.uniform(-10, 30, 10)], 1)
    coords[3] = (-33.9, 151.2)  # Sydney: every pair with it is beyond 3000 km
    z = g.normal(size=(10, 8))
    loss = GeoRankLoss(
        temperature=0.04,
        soft_rank_eps=1e-6,
        min_dist_km=lo,
        max_dist_km=hi,
        soft_margin=margin,
        rank_loss="l1" if l1 else "mse",
    )
    ours = float(loss(torch.tensor(z), torch.tensor(coords)))
    assert ours == pytest.approx(_reference(z, coords, 0.04, lo, hi, margin, l1), rel=1e-5, abs=1e-9)


def test_gradient_flows_and_empty_window():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(16, 32, generator=g, requires_grad=True)
    coords = torch.stack([torch.rand(16, generator=g) * 20 + 40, torch.rand(16, generator=g) * 20], 1)
    # at eps=1e-3 distinct similarities give singleton blocks (zero Jacobian); a larger eps pools them
    loss = GeoRankLoss(soft_rank_eps=0.5)(z, coords)
    loss.backward()
    assert loss > 0 and z.grad is not None and float(z.grad.abs().sum()) > 0
    none_kept = GeoRankLoss(min_dist_km=1e5, max_dist_km=2e5)(z, coords)
    assert float(none_kept) == 0.0 and none_kept.requires_grad


def test_euclidean_variant_and_combine():
    # Euclidean distances between normalised (lat, lon) rank by direction, not by great-circle distance
    coords = torch.tensor([[10.0, 10.0], [20.0, 20.0], [10.0, 11.0], [40.0, 5.0]], dtype=torch.float64)
    e = euclidean_latlon(coords)
    assert float(e[0, 1]) == pytest.approx(0.0, abs=1e-12) and float(e[0, 2]) > 0
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hav = GeoRankLoss(soft_rank_eps=1e-6, soft_margin=0.0)(z, coords)
    euc = GeoRankLoss(soft_rank_eps=1e-6, soft_margin=0.0, distance="euclidean")(z, coords)
    assert float(hav) != pytest.approx(float(euc))
    ssl, geo = torch.tensor(2.0), torch.tensor(4.0)
    assert float(combine(ssl, geo, 0.5)) == 3.0 and float(combine(ssl, geo, 0.25)) == 2.5
    assert float(combine(ssl, None, 0.5)) == 2.0


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match="rank_loss"):
        GeoRankLoss(rank_loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_dist_km"):
        GeoRankLoss(min_dist_km=10, max_dist_km=5)
    with pytest.raises(ValueError, match="coords"):
        GeoRankLoss()(torch.randn(4, 3), torch.zeros(3, 2))


def _spread_batch(b, dim=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, dim, generator=g, dtype=torch.float64)
    coords = torch.stack([torch.rand(b, generator=g) * 20 + 40, torch.rand(b, generator=g) * 30 - 5], 1).double()
    return z, coords


def test_gradient_at_paper_defaults_is_non_negligible_at_paper_batch_sizes():
    # τ = 0.04, ε = 1e-3: the soft rank's Jacobian is (1/ε)(I − block mean) on pooled blocks and 0 on singletons;
    # sorted neighbours pool when their cosines differ by less than τ·ε = 4e-5. With B − 1 = 255 similarities
    # per row some neighbours always do, so every sample gets a (sparse, large) gradient.
    z, coords = _spread_batch(256)
    loss_fn = GeoRankLoss()  # paper defaults
    assert (loss_fn.temperature, loss_fn.soft_rank_eps) == (0.04, 1e-3)
    z.requires_grad_()
    loss = loss_fn(z, coords)
    (grad,) = torch.autograd.grad(loss, z)
    assert bool((grad.norm(dim=1) > 0).all()) and float(grad.norm()) > 0.05
    # larger than with a 100x smoother soft rank
    zs = z.detach().clone().requires_grad_()
    (smooth,) = torch.autograd.grad(GeoRankLoss(soft_rank_eps=0.1)(zs, coords), zs)
    assert float(grad.norm()) > 5 * float(smooth.norm())
    # it is the exact derivative of the (piecewise-smooth) loss: central differences along a random direction
    d = torch.randn(z.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    h = 1e-9
    with torch.no_grad():
        fd = (loss_fn(z + h * d, coords) - loss_fn(z - h * d, coords)) / (2 * h)
    assert float(fd) == pytest.approx(float((grad * d).sum()), rel=1e-4)
    # and it lowers the loss: plain gradient steps on the embeddings
    w = z.detach().clone().requires_grad_()
    opt = torch.optim.SGD([w], lr=0.5)
    start = float(loss_fn(w, coords))
    for _ in range(15):
        opt.zero_grad()
        loss_fn(w, coords).backward()
        opt.step()
    assert float(loss_fn(w, coords)) < start - 1e-3


def test_gradient_vanishes_for_small_well_separated_batches():
    # the documented limit: B = 16 spread embeddings have no two cosines within τ·ε, every block is a singleton
    z, coords = _spread_batch(16)
    z.requires_grad_()
    (grad,) = torch.autograd.grad(GeoRankLoss()(z, coords), z)
    assert float(grad.abs().max()) == 0.0
    zn = torch.nn.functional.normalize(z.detach(), dim=1)
    gaps = torch.diff(torch.sort(drop_diagonal(zn @ zn.T), dim=1).values, dim=1)
    assert float(gaps.min()) > 0.04 * 1e-3
    (grad_eps,) = torch.autograd.grad(GeoRankLoss(soft_rank_eps=0.5)(z, coords), z)  # the exposed option
    assert bool((grad_eps.norm(dim=1) > 0).all())
