import pytest
import torch
from lightning.pytorch import Trainer
from rsim.core.tasks import MultiLabelClassificationTask
from rsim.georank.data import SSL4EODataModule, Views
from rsim.georank.data.testing import write_ssl4eo_fixture
from rsim.georank.tasks import METHODS, GeoRankConfig

SMALL = {
    "moco": {"proj_hidden_dim": 32, "proj_dim": 16, "memory_bank_size": 8},
    "gassl": {"proj_hidden_dim": 32, "proj_dim": 16, "memory_bank_size": 8, "num_clusters": 3},
    "byol": {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 32},
    "simclr": {"proj_hidden_dim": 32, "proj_dim": 16},
    "simsiam": {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 8},
    "dino": {"head_hidden_dim": 32, "bottleneck_dim": 8, "output_dim": 32},
}


def _batch(n_views=2, local=0, b=6):
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(b, 4, 32, 32, generator=g) for _ in range(n_views)]
    views += [torch.randn(b, 4, 16, 16, generator=g) for _ in range(local)]
    coords = torch.stack([torch.rand(b, generator=g) * 20 + 40, torch.rand(b, generator=g) * 20], 1).double()
    return {"views": views, "coords": coords}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_step_and_georank_attachment(method):
    torch.manual_seed(0)
    geo = GeoRankConfig(soft_rank_eps=1.0)
    model = METHODS[method](backbone="resnet10t", in_channels=4, georank=geo, **SMALL[method])
    batch = _batch(local=2 if method == "dino" else 0)
    ssl, emb = model.ssl_step(batch["views"])
    assert torch.isfinite(ssl)
    expected_dim = {"moco": 16, "gassl": 16, "byol": 16, "simclr": 16, "simsiam": 16, "dino": 32}[method]
    assert all(z.shape == (6, expected_dim) for z, _ in emb)
    assert sum(w for _, w in emb) == pytest.approx(1.0)
    if method == "dino":
        assert [w for _, w in emb] == [0.5, 0.5] and not emb[0][0].requires_grad and emb[1][0].requires_grad
    else:
        assert emb[0][0].requires_grad
    geo_loss = model.georank_loss(emb, batch["coords"])
    assert geo_loss is not None and float(geo_loss) > 0
    off = METHODS[method](backbone="resnet10t", in_channels=4, georank=GeoRankConfig(enabled=False), **SMALL[method])
    assert off.georank is None and off.georank_loss(emb, batch["coords"]) is None


def test_training_changes_weights_and_georank_gradient(tmp_path):
    write_ssl4eo_fixture(tmp_path, num_locations=8, num_timestamps=2, size=36)
    dm = SSL4EODataModule(
        str(tmp_path),
        bands=["B02", "B03", "B04", "B08"],
        img_size=32,
        batch_size=8,
        num_workers=0,
        temporal_views=True,
        views=Views(crop_scale=(0.5, 1.0)),
    )
    torch.manual_seed(0)
    model = METHODS["byol"](
        backbone="resnet10t", in_channels=4, georank=GeoRankConfig(soft_rank_eps=1.0), **SMALL["byol"]
    )
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, dm)
    m = trainer.callback_metrics
    assert {"train/loss", "train/ssl", "train/georank"} <= set(m)
    assert float(m["train/loss"]) == pytest.approx(
        0.5 * float(m["train/ssl"]) + 0.5 * float(m["train/georank"]), rel=1e-5
    )
    after = model.backbone.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    # momentum target moved towards the online network but is not equal to it
    assert not torch.equal(model.backbone_m.conv1[0].weight, model.backbone.conv1[0].weight)
    out = model.export_backbone(tmp_path / "bb.safetensors")
    probe = MultiLabelClassificationTask(
        backbone="resnet10t", in_channels=4, weights=str(out), freeze_backbone=True, drop_path_rate=0.0
    )
    torch.testing.assert_close(probe.model.conv1[0].weight, model.backbone.conv1[0].weight)
    assert [n for n, p in probe.model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


def test_knn_scores_and_metrics():
    from rsim.georank.evaluation import knn_multilabel, knn_scores

    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    query = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    s = knn_scores(train, labels, query, k=2, temperature=0.1)
    torch.testing.assert_close(s, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # k = all: weights exp(cos/T) favour the nearer class but both contribute
    s4 = knn_scores(train, labels, query, k=4, temperature=1.0)
    assert 0.5 < float(s4[0, 0]) < 1.0 and float(s4[0].sum()) == pytest.approx(1.0)
    m = knn_multilabel(train, labels, query, torch.tensor([[1, 0], [0, 1]]), k=2, temperature=0.1)
    assert m["knn/map_macro"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must"):
        knn_scores(train, labels, query, k=0)


def test_geo_clusters_kmeans_on_the_sphere():
    import numpy as np
    from rsim.georank.geo import geo_clusters

    g = np.random.default_rng(0)
    # three well separated groups, one straddling the antimeridian (lon 179.9 / -179.9)
    groups = [(50.0, 10.0), (-30.0, 140.0), (10.0, 179.95)]
    coords = np.concatenate([np.stack([g.normal(a, 0.05, 10), g.normal(b, 0.02, 10)], 1) for a, b in groups])
    coords[20:, 1] = np.where(np.arange(10) % 2 == 0, 179.99, -179.99)
    labels = geo_clusters(coords, k=3, seed=0)
    assert labels.shape == (30,) and set(labels.tolist()) == {0, 1, 2}
    for i in range(3):  # each group is exactly one cluster (the antimeridian group too)
        assert len(set(labels[10 * i : 10 * i + 10].tolist())) == 1
    assert np.array_equal(labels, geo_clusters(coords, k=3, seed=0))
    with pytest.raises(ValueError, match="k=40"):
        geo_clusters(coords, k=40)
    with pytest.raises(ValueError, match="finite"):
        geo_clusters(np.full((3, 2), np.nan), k=1)


def test_gassl_geo_head_on_ssl4eo_temporal_pairs(tmp_path):
    from rsim.georank.tasks import GASSL

    write_ssl4eo_fixture(tmp_path, num_locations=8, num_timestamps=2, size=36)
    dm = SSL4EODataModule(
        str(tmp_path), bands=["B02", "B03", "B04", "B08"], img_size=32, batch_size=8, num_workers=0,
        temporal_views=True, views=Views(crop_scale=(0.5, 1.0)),
    )  # fmt: skip
    torch.manual_seed(0)
    model = GASSL(backbone="resnet10t", in_channels=4, num_clusters=4, **SMALL["moco"])
    assert model.georank is None  # GASSL alone unless GeoRank is enabled
    assert isinstance(model, METHODS["gassl"])
    with pytest.raises(RuntimeError, match="clusters are not set"):
        model.auxiliary_loss({"index": torch.zeros(2, dtype=torch.long)}, [(torch.zeros(2, 16), 1.0)])
    trainer = Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    head_before = model.geo_head.weight.clone()
    trainer.fit(model, dm)
    # clusters of the 8 fixture locations (8 European cities): the same k-means on the true centres
    from rsim.georank.geo import geo_clusters

    expect = geo_clusters(dm.train_coordinates(), 4, 0)
    assert model.cluster_of.tolist() == expect.tolist() and len(set(expect.tolist())) == 4
    m = trainer.callback_metrics
    assert {"train/aux", "train/ssl", "train/geo_acc"} <= set(m) and "train/georank" not in m
    assert float(m["train/loss"]) == pytest.approx(float(m["train/ssl"]) + float(m["train/aux"]), rel=1e-5)
    assert float(m["train/aux"]) > 0 and not torch.equal(head_before, model.geo_head.weight)
    # the geo-classification gradient reaches the backbone through the query projection
    model.zero_grad()
    batch = {"index": torch.arange(4), "views": [torch.randn(4, 4, 32, 32)] * 2}
    q = model.projection(model.backbone(batch["views"][0]))
    model.auxiliary_loss(batch, [(q, 1.0)]).backward()
    assert float(model.backbone.conv1[0].weight.grad.abs().sum()) > 0
    with pytest.raises(IndexError, match="beyond"):
        model.auxiliary_loss({"index": torch.tensor([99])}, [(q[:1], 1.0)])
