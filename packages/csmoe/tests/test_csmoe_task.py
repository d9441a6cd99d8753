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
    task = CSMoEPretrainTask(
        **TINY, moe_layers=["shared"], num_experts=2, slots_per_expert=4, input_bands="S1S2"
    )
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
