import torch
from rsim.csmoe.losses import masked_mse, nt_xent, patchify, unpatchify
from rsim.csmoe.retrieval import cbir_scores, cross_sensor_retrieval

torch.set_num_threads(1)


def test_patchify_layout_and_roundtrip():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (2, 4, 12)
    # patch 1 = rows 0-1, columns 2-3; channel-last inside a patch: first entries are pixel (0, 2) of c0,
    # c1, c2
    assert p[0, 1, :3].tolist() == [x[0, 0, 0, 2].item(), x[0, 1, 0, 2].item(), x[0, 2, 0, 2].item()]
    assert torch.equal(unpatchify(p, 2, 3), x)


def test_masked_mse_only_counts_masked_patches():
    torch.manual_seed(0)
    img = torch.rand(2, 2, 4, 4)
    pred = patchify(img, 2).clone()
    mask = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1]])
    pred[0, 1] += 5.0  # unmasked: ignored
    pred[1, 3] += 1.0  # masked: error 1 per value
    assert masked_mse(img, pred, mask, 2).item() == 0.5
    normed = masked_mse(img, torch.zeros_like(pred), torch.ones(2, 4), 2, norm_pix_loss=True)
    assert abs(normed.item() - (1 - 1 / 8)) < 1e-3  # standardised targets: mean square = (n-1)/n


def test_nt_xent_matches_explicit_formula():
    torch.manual_seed(0)
    a, b, tau = torch.randn(5, 8), torch.randn(5, 8), 0.5
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    sim = torch.exp(z @ z.t() / tau)
    partner = torch.cat([torch.arange(5, 10), torch.arange(0, 5)])
    num = sim[torch.arange(10), partner]
    den = sim.sum(1) - sim.diag()
    expected = (-torch.log(num / den)).mean()
    torch.testing.assert_close(nt_xent(a, b, tau), expected)
    assert nt_xent(a, a * 3.0, tau) < nt_xent(a, b, tau)


def test_cbir_scores_by_hand():
    q = torch.tensor([[1.0, 0.0]])
    ql = torch.tensor([[1, 1, 0]])
    arch = torch.tensor([[1.0, 0.1], [0.0, 1.0], [1.0, 0.5]])
    al = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 1, 1]])
    s = cbir_scores(q, ql, arch, al, k=2)
    # top-2: item 0 (P 1, R 1/2, F1 2/3) and item 2 (P 2/3, R 1, F1 4/5)
    assert abs(s["precision@2"] - (1 + 2 / 3) / 2) < 1e-6
    assert abs(s["recall@2"] - 0.75) < 1e-6
    assert abs(s["f1@2"] - (2 / 3 + 4 / 5) / 2) < 1e-6
    self_s = cbir_scores(arch, al, arch, al, k=1, exclude_self=True)
    assert self_s["precision@1"] < 1.0
    both = cross_sensor_retrieval({"s1": arch, "s2": arch}, al, {"s1": arch, "s2": arch}, al, k=1)
    assert len(both) == 12 and both["s1->s2/precision@1"] == 1.0
