import itertools

import numpy as np
import pytest
import torch
from rsim.georank.softrank import hard_rank, isotonic_decreasing, soft_rank
from scipy.optimize import minimize


def _brute_isotonic(y: np.ndarray) -> np.ndarray:
    """Decreasing isotonic regression by the min-max formula (independent of PAV)."""
    n = len(y)
    return np.array([min(max(y[j : k + 1].mean() for k in range(i, n)) for j in range(i + 1)) for i in range(n)])


def _brute_projection(z: np.ndarray) -> np.ndarray:
    """Projection of z onto the permutahedron of (n, ..., 1) as a QP over all 2^n - 2 subset constraints."""
    n = len(z)
    w = np.arange(n, 0, -1, dtype=float)
    cons = [{"type": "eq", "fun": lambda x: x.sum() - w.sum()}]
    for size in range(1, n):
        bound = w[:size].sum()
        for subset in itertools.combinations(range(n), size):
            idx = list(subset)
            cons.append({"type": "ineq", "fun": lambda x, idx=idx, b=bound: b - x[idx].sum()})
    res = minimize(
        lambda x: 0.5 * ((x - z) ** 2).sum(),
        x0=np.full(n, w.mean()),
        jac=lambda x: x - z,
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert res.success, res.message
    return res.x


def test_isotonic_matches_min_max_formula():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(20, 9, generator=g, dtype=torch.float64) * 3
    v, block = isotonic_decreasing(y)
    for row in range(20):
        np.testing.assert_allclose(v[row].numpy(), _brute_isotonic(y[row].numpy()), atol=1e-10)
    assert (v[:, :-1] >= v[:, 1:] - 1e-12).all()
    assert (block[:, 0] == 0).all()


@pytest.mark.parametrize("eps", [0.3, 1.0, 4.0])
def test_soft_rank_matches_brute_force_projection(eps):
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    ours = soft_rank(theta, regularization_strength=eps)
    for row in range(theta.shape[0]):
        ref = _brute_projection(theta[row].numpy() / eps)
        np.testing.assert_allclose(ours[row].numpy(), ref, atol=1e-5)


def test_descending_and_ranges():
    theta = torch.tensor([[0.3, -1.0, 2.0, 0.5]], dtype=torch.float64)
    asc = soft_rank(theta, 1e-3)
    desc = soft_rank(theta, 1e-3, direction="descending")
    assert torch.equal(asc, torch.tensor([[2.0, 1.0, 4.0, 3.0]], dtype=torch.float64))
    assert torch.equal(desc, 5.0 - asc)
    # strong regularisation: everything pooled to the mean rank; sum is always n(n+1)/2
    flat = soft_rank(theta, 1e6)
    torch.testing.assert_close(flat, torch.full_like(flat, 2.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(soft_rank(theta, 0.7).sum(), torch.tensor(10.0, dtype=torch.float64))


def test_hard_rank_limit():
    g = torch.Generator().manual_seed(2)
    theta = torch.randn(32, 63, generator=g, dtype=torch.float64)
    ranks = hard_rank(theta)
    assert torch.equal(ranks, torch.argsort(torch.argsort(theta, dim=1), dim=1).double() + 1)
    # once eps is below the smallest gap between sorted values, the projection is the hard rank exactly
    min_gap = float(torch.diff(torch.sort(theta, dim=1).values, dim=1).min())
    torch.testing.assert_close(soft_rank(theta, 0.5 * min_gap), ranks, atol=1e-9, rtol=0)
    errors = [float((soft_rank(theta, e) - ranks).abs().max()) for e in (1.0, 0.1, 0.01, 0.001, 0.5 * min_gap)]
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[0] > 1.0


@pytest.mark.parametrize("direction", ["ascending", "descending"])
def test_gradcheck_float64(direction):
    g = torch.Generator().manual_seed(3)
    theta = (torch.randn(4, 7, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: soft_rank(t, 0.5, direction=direction), (theta,), eps=1e-6, atol=1e-6)


def test_gradient_through_1d_and_half_precision():
    theta = torch.tensor([0.1, 0.4, -0.2], requires_grad=True)
    soft_rank(theta, 1.0).pow(2).sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()
    half = soft_rank(torch.tensor([[1.0, 3.0, 2.0]], dtype=torch.bfloat16), 1e-3)
    assert half.dtype == torch.bfloat16 and half.tolist() == [[1.0, 3.0, 2.0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="regularization_strength"):
        soft_rank(torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        soft_rank(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="backend"):
        soft_rank(torch.zeros(3), backend="numpy")  # type: ignore[arg-type]


def test_torchsort_backend_agrees():
    pytest.importorskip("torchsort")
    theta = torch.randn(8, 31, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(soft_rank(theta, 0.1), soft_rank(theta, 0.1, backend="torchsort"), atol=1e-4, rtol=0)


def test_isotonic_edge_cases():
    inc = torch.arange(10, dtype=torch.float64).unsqueeze(0)  # every pair violates: one block at the mean
    v, block = isotonic_decreasing(inc)
    assert torch.allclose(v, torch.full_like(v, 4.5)) and (block == 0).all()
    dec = inc.flip(1)  # already ordered: untouched, singleton blocks
    v, block = isotonic_decreasing(dec)
    assert torch.equal(v, dec) and torch.equal(block[0], torch.arange(10))
    v, block = isotonic_decreasing(torch.tensor([[3.0]]))
    assert v.item() == 3.0 and block.item() == 0
    with pytest.raises(ValueError, match="rows, n"):
        isotonic_decreasing(torch.zeros(3))
