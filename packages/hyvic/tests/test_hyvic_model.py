import pytest
import torch
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig, SwinLayer, rate_bits, rate_bpppc


def tiny(c=4, s=1, **kw):
    cfg = dict(in_channels=c, num_stages=s, width=16, latent_channels=12, depths=[1, 2], heads=[2, 2])
    cfg.update(kw)
    return HyVIC(HyVICConfig(**cfg))


@pytest.mark.parametrize("s", [0, 1, 2])
def test_shapes_per_stage_count(s):
    m = tiny(s=s)
    x = torch.rand(2, 4, 32, 48)
    out = m(x)
    assert out["x_hat"].shape == x.shape
    assert out["likelihoods"]["y"].shape == (2, 12, 32 // 2**s, 48 // 2**s)
    assert out["likelihoods"]["z"].shape == (2, 16, 32 // 2 ** (s + 2), 48 // 2 ** (s + 2))
    assert 0.0 <= float(out["x_hat"].min()) and float(out["x_hat"].max()) <= 1.0  # sigmoid


def test_encoder_structure_follows_config():
    m = tiny(s=2)
    convs = [mod for mod in m.g_a if isinstance(mod, torch.nn.Conv2d)]
    assert convs[0].kernel_size == (1, 1) and convs[0].in_channels == 4  # spectral stage
    assert [c.stride for c in convs[1:-1]] == [(2, 2), (2, 2)]  # one stride-2 conv per spatial stage
    assert convs[-1].out_channels == 12 and convs[-1].kernel_size == (1, 1)
    assert isinstance(m.g_s[-1], torch.nn.Sigmoid)


def test_bad_input_shapes_raise():
    m = tiny(s=1)
    with pytest.raises(ValueError, match="expects input"):
        m(torch.rand(1, 5, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        m(torch.rand(1, 4, 36, 32))


def test_rate_matches_manual_sum():
    m = tiny().eval()
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        out = m(x)
    manual = -(torch.log2(out["likelihoods"]["y"]).sum() + torch.log2(out["likelihoods"]["z"]).sum())
    assert torch.allclose(rate_bits(out["likelihoods"]), manual.reshape(1))
    assert torch.allclose(rate_bpppc(out["likelihoods"], 4, 32, 32), manual / (4 * 32 * 32))


def test_training_adds_noise_eval_rounds():
    m = tiny()
    x = torch.rand(1, 4, 32, 32)
    m.eval()
    with torch.no_grad():
        a, b = m(x)["x_hat"], m(x)["x_hat"]
    assert torch.equal(a, b)
    m.train()
    with torch.no_grad():
        c, d = m(x)["x_hat"], m(x)["x_hat"]
    assert not torch.equal(c, d)


def test_compress_decompress_equals_quantised_forward():
    m = tiny(s=2).eval()
    m.update(force=True)
    x = torch.rand(2, 4, 32, 48)
    enc = m.compress(x)
    assert len(enc["strings"][0]) == 2 and enc["shape"] == (2, 3)
    dec = m.decompress(enc["strings"], enc["shape"])["x_hat"]
    with torch.no_grad():
        ref = m(x)["x_hat"]
    assert torch.equal(dec, ref)


def test_quantiles_are_only_aux_parameters():
    m = tiny()
    names = [n for n, _ in m.named_parameters() if n.endswith(".quantiles")]
    assert names == ["entropy_bottleneck.quantiles"]
    aux = m.aux_loss()
    aux.backward()
    assert m.entropy_bottleneck.quantiles.grad is not None


def test_shifted_window_attention_is_local():
    torch.manual_seed(1)
    layer = SwinLayer(8, 2, window=4, shift=False, mlp_ratio=1.0, drop_path=0.0).eval()
    x = torch.rand(1, 8, 8, 8)
    y = layer(x)
    x2 = x.clone()
    x2[:, 4:, 4:] += 1.0  # another window: no effect on the top-left window
    assert torch.allclose(layer(x2)[:, :4, :4], y[:, :4, :4])
    shifted = SwinLayer(8, 2, window=4, shift=True, mlp_ratio=1.0, drop_path=0.0).eval()
    assert shifted(x).shape == x.shape


def test_small_feature_map_uses_whole_map_window():
    layer = SwinLayer(8, 2, window=8, shift=True, mlp_ratio=1.0, drop_path=0.0).eval()
    x = torch.rand(2, 4, 6, 8)
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_config_round_trip():
    cfg = HyVICConfig(in_channels=202, num_stages=3, width=64, latent_channels=96)
    assert HyVICConfig(**cfg.to_dict()) == cfg
    assert cfg.divisor == 32
