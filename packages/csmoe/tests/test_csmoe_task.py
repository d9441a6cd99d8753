import lightning as L
import pytest
import torch
from rsim.csmoe.models.backbone import CSMAE_BAND_ORDER
from rsim.csmoe.tasks import CSMoEPretrainTask, channel_permutation
from torch.utils.data import DataLoader

torch.set_num_threads(1)

TINY = dict(
    vit_size="tiny",
    embed_dim=32,
    num_heads=2,
    specific_depth=1,
    shared_depth=1,
    decoder_embed_dim=32,
    decoder_depth=1,
    decoder_num_heads=2,
)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.img = torch.rand(n, 12, 120, 120, generator=g)
        self.label = (torch.rand(n, 19, generator=g) > 0.7).float()

    def __len__(self) -> int:
        return len(self.img)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.img[i], "label": self.label[i], "index": i}


def test_loss_terms_and_permutation():
    torch.manual_seed(0)
    task = CSMoEPretrainTask(**TINY, moe_layers=["shared"], num_experts=2, slots_per_expert=4, input_bands="S1S2")
    order = ["VV", "VH", "B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
    x = torch.rand(2, 12, 120, 120)
    img = task.images({"image": x})
    for i, band in enumerate(CSMAE_BAND_ORDER):
        assert torch.equal(img[:, i], x[:, order.index(band)])
    terms = task.losses(img, generator=torch.Generator().manual_seed(0))
    assert set(terms) == {
        "rec_s1_from_s1",
        "rec_s2_from_s2",
        "rec_s2_from_s1",
        "rec_s1_from_s2",
        "mim",
        "loss",
    }
    torch.testing.assert_close(terms["loss"], sum(v for k, v in terms.items() if k != "loss"))
    assert channel_permutation(list(CSMAE_BAND_ORDER)) is None
    with pytest.raises(ValueError, match="lacks CSMAE band"):
        channel_permutation(["VV", "VH"])
    with pytest.raises(ValueError, match="NaN"):
        task.images({"image": torch.full((1, 12, 120, 120), float("nan"))})
    only_mim = CSMoEPretrainTask(**TINY, apply_umr_loss=False, apply_cmr_loss=False)
    assert set(only_mim.losses(img)) == {"mim", "loss"}


def test_fit_reduces_loss_and_logs_usage(tmp_path):
    torch.manual_seed(0)
    task = CSMoEPretrainTask(
        **TINY, moe_layers=["shared"], num_experts=2, slots_per_expert=8, lr=3e-3, warmup_epochs=0.0
    )
    data = Pairs(8)
    loader = DataLoader(data, batch_size=4)
    with torch.no_grad():
        task.eval()
        before = task.losses(data.img[:4], generator=torch.Generator().manual_seed(1))["loss"].item()
    task.train()
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, loader, loader)
    with torch.no_grad():
        task.eval()
        after = task.losses(data.img[:4], generator=torch.Generator().manual_seed(1))["loss"].item()
    assert after < before
    metrics = trainer.callback_metrics
    assert "val/moe/s1/blocks.0/expert1" in metrics and "val/moe/blocks.0/s1_s2_usage_tv" in metrics
    assert 0.0 <= metrics["val/cbir/s1->s2/precision@10"].item() <= 1.0


def test_linear_probe_from_pretrain_checkpoint(tmp_path):
    from rsim.csmoe.tasks import CSMoEProbeTask

    torch.manual_seed(0)
    pre = CSMoEPretrainTask(**TINY, moe_layers=["shared"], num_experts=2, slots_per_expert=4)
    path = tmp_path / "pre.ckpt"
    torch.save({"state_dict": pre.state_dict(), "epoch": 0}, path)
    enc = {k: v for k, v in TINY.items() if not k.startswith("decoder")}
    probe = CSMoEProbeTask(**enc, moe_layers=["shared"], num_experts=2, slots_per_expert=4, weights=str(path), lr=1e-2)
    for k, v in pre.model.backbone.state_dict().items():
        assert torch.equal(probe.backbone.state_dict()[k], v), k
    frozen = {k: v.clone() for k, v in probe.backbone.state_dict().items()}
    head_before = probe.head.weight.detach().clone()
    loader = DataLoader(Pairs(8), batch_size=4)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(probe, loader, loader)
    assert all(torch.equal(probe.backbone.state_dict()[k], v) for k, v in frozen.items())
    assert not torch.equal(probe.head.weight, head_before)
    assert any(k.startswith("val/") and "map" in k.lower() for k in trainer.callback_metrics)
    with pytest.raises(ValueError, match="features"):
        CSMoEProbeTask(**enc, features="both")  # type: ignore[arg-type]


class SegPairs(Pairs):
    def __init__(self, n: int = 4) -> None:
        super().__init__(n)
        ref = torch.full((n, 120, 120), 211, dtype=torch.int32)  # arable land
        ref[:, :, 60:] = 311  # broad-leaved forest
        ref[:, :10] = 0  # nodata
        ref[:, 10:20] = 122  # UNLABELED code
        self.ref = ref
        self.img = self.img.clone()
        self.img[:, :, :, 60:] += 2.0  # the forest half is brighter: learnable from the pixels

    def __getitem__(self, i: int) -> dict:
        return {**super().__getitem__(i), "reference_map": self.ref[i]}


def test_segmentation_task_targets_and_fit(tmp_path):
    from rsim.csmoe.tasks import CSMoESegmentationTask

    torch.manual_seed(0)
    enc = {k: v for k, v in TINY.items() if not k.startswith("decoder")}
    task = CSMoESegmentationTask(**enc, freeze_backbone=False, lr=1e-2)
    data = SegPairs(4)
    target = task.targets({"reference_map": data.ref[:1]})
    assert target[0, 0, 0] == 255 and target[0, 15, 0] == 255  # nodata, UNLABELED
    assert target[0, 50, 0] == 2 and target[0, 50, 100] == 8  # Arable land, Broad-leaved forest (CLC order)
    with pytest.raises(ValueError, match="CLC range"):
        task.targets({"reference_map": torch.full((1, 4, 4), 5000)})
    with pytest.raises(KeyError, match="reference_map"):
        task.targets({"image": torch.zeros(1)})
    assert task(data.img[:2]).shape == (2, 19, 120, 120)
    loader = DataLoader(data, batch_size=2)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, loader, loader)
    m = trainer.callback_metrics
    assert "val/miou" in m and 0.0 <= m["val/miou"].item() <= 1.0
    assert m["val/oa"].item() > 0.5  # two vertical halves are easy to separate
