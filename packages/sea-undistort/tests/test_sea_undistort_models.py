import math

import pytest
import torch
from rsim.core.errors import DataFormatError
from rsim.sea_undistort.models import (
    NAFUNet,
    PixelSpace,
    ResShift,
    ResShiftDiffusion,
    SwinUNet,
    VQAutoencoder,
    exponential_sqrt_etas,
    load_autoencoder,
)

torch.set_num_threads(1)
TINY = dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(2,), swin_depth=2,
            swin_embed_dim=16, window_size=4, head_dim=8, lq_widths=(8, 8, 8))  # fmt: skip


def test_schedule_values():
    s = exponential_sqrt_etas(4, kappa=2.0, min_noise_level=0.2, etas_end=0.99, power=0.3)
    assert s[0].item() == pytest.approx(0.1) and s[-1].item() == pytest.approx(0.99)
    base = (0.99 / 0.1) ** (1 / 3)
    expected = [0.1 * base ** ((k / 3) ** 0.3 * 3) for k in range(4)]
    assert s.tolist() == pytest.approx(expected, rel=1e-9)
    assert s.tolist() == pytest.approx([0.1, 0.520096, 0.761382, 0.99], abs=1e-5)
    d = ResShiftDiffusion()
    assert d.etas_prev[0] == 0 and torch.allclose(d.alphas, d.etas - d.etas_prev)
    assert d.posterior_variance[0] == 0
    assert torch.allclose(d.posterior_variance[1:], 4.0 * d.etas_prev[1:] * d.alphas[1:] / d.etas[1:])


def test_forward_process_and_posterior():
    d = ResShiftDiffusion()
    x0, y = torch.zeros(2000, 1, 1, 1), torch.ones(2000, 1, 1, 1)
    t = torch.full((2000,), 3)
    xt = d.q_sample(x0, y, t, torch.zeros_like(x0))
    assert torch.allclose(xt, torch.full_like(xt, 0.99**2))  # x0 + η_T (y - x0)
    torch.manual_seed(0)
    samples = d.q_sample(x0, y, t)
    assert samples.std().item() == pytest.approx(2.0 * 0.99, rel=0.08)
    scaled = d.scale_input(torch.ones(1, 1, 1, 1), torch.tensor([3]))
    assert scaled.item() == pytest.approx(1 / math.sqrt(4 * 0.99**2 + 1))
    mean, var = d.posterior_mean_variance(torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), torch.tensor([0]))
    assert mean.item() == 0 and var.item() == 0  # the last step returns x0


def test_vq_autoencoder_f4_and_local_weights(tmp_path):
    torch.manual_seed(0)
    ae = VQAutoencoder(embed_dim=3, n_embed=16, ch=32, ch_mult=(1, 2, 4), num_res_blocks=1)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (1, 3, 8, 8) and ae.decode(z).shape == (1, 3, 32, 32)
    keys = set(ae.state_dict())
    assert {
        "encoder.down.0.block.0.norm1.weight",
        "encoder.mid.attn_1.q.weight",
        "decoder.up.2.upsample.conv.weight",
        "quantize.embedding.weight",
        "quant_conv.weight",
        "post_quant_conv.weight",
    } <= keys  # LDM names
    torch.save({"state_dict": ae.state_dict()}, tmp_path / "vq.pth")
    loaded = load_autoencoder(tmp_path / "vq.pth", ch=32, ch_mult=(1, 2, 4), num_res_blocks=1)
    assert isinstance(loaded, VQAutoencoder) and torch.allclose(loaded.encode(x), z)
    assert isinstance(load_autoencoder(None), PixelSpace) and isinstance(load_autoencoder(tmp_path / "x"), PixelSpace)
    with pytest.raises(DataFormatError, match="vq.pth"):
        load_autoencoder(tmp_path / "vq.pth", ch=64, ch_mult=(1, 2, 4), num_res_blocks=1)


def _resshift(latent: bool, early_fusion: bool) -> ResShift:
    ae = (
        VQAutoencoder(n_embed=16, ch=16, ch_mult=(1, 2, 4), num_res_blocks=1).requires_grad_(False)
        if latent
        else PixelSpace()
    )
    down = 2 if latent else 0
    net = SwinUNet(latent_channels=3, lq_in_channels=4 if early_fusion else 3, lq_downsample=down, **TINY)
    return ResShift(net, ResShiftDiffusion(), ae, early_fusion=early_fusion)


@pytest.mark.parametrize("latent", [True, False])
def test_resshift_shapes_and_determinism(latent):
    torch.manual_seed(0)
    model = _resshift(latent, early_fusion=True).eval()
    lq, mask = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32)
    out = model.training_loss(lq, lq, mask)
    assert out["pred_x0"].shape == ((2, 3, 8, 8) if latent else (2, 3, 32, 32))
    a = model.restore(lq, mask, generator=torch.Generator().manual_seed(3))
    b = model.restore(lq, mask, generator=torch.Generator().manual_seed(3))
    c = model.restore(lq, mask, generator=torch.Generator().manual_seed(4))
    assert a.shape == lq.shape and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="glint mask"):
        model.restore(lq, None)
    with pytest.raises(ValueError, match="4 LQ channels"):
        ResShift(
            SwinUNet(lq_in_channels=3, lq_downsample=0, **TINY), ResShiftDiffusion(), PixelSpace(), early_fusion=True
        )


def test_early_fusion_mask_changes_output():
    torch.manual_seed(0)
    model = _resshift(False, early_fusion=True)
    for p in model.denoiser.parameters():  # break the zero-init residuals so every path carries signal
        p.data.add_(0.05 * torch.randn_like(p))
    lq = torch.rand(1, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    a = model.restore(lq, torch.zeros(1, 1, 16, 16), generator=g)
    b = model.restore(lq, torch.ones(1, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)


def test_resshift_short_overfit():
    torch.manual_seed(0)
    model = _resshift(False, early_fusion=True)
    lq = torch.rand(2, 3, 8, 8) * 2 - 1
    gt = (lq * 0.5).clamp(-1, 1)
    mask = torch.rand(2, 1, 8, 8)
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = model.training_loss(lq, gt, mask)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = sum(model.training_loss(lq, gt, mask, t=torch.full((2,), k))["loss"].item() for k in range(4)) / 4
    assert final < 0.25 * first


def test_nafunet_baseline_overfit():
    torch.manual_seed(0)
    net = NAFUNet(4, 3, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    x = torch.rand(2, 4, 18, 22)
    assert net(x).shape == (2, 3, 18, 22)
    target = x[:, :3] * 0.5
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.l1_loss(net(x), target)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.3 * losses[0]
