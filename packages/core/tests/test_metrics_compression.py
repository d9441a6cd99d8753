import math

import numpy as np
import pytest
import torch
from rsim.core.metrics import PSNR, SpectralAngle, bd_psnr, bd_rate, bpppc, psnr, spectral_angle
from torchmetrics.functional.image import spectral_angle_mapper

REF_RATE = np.array([0.1, 0.25, 0.5, 1.0, 2.0])
REF_PSNR = np.array([28.0, 31.5, 34.0, 37.2, 40.1])


def test_psnr_hand_computed() -> None:
    x = torch.zeros(2, 3, 4, 4)
    y = torch.zeros(2, 3, 4, 4)
    y[0] = 0.1  # mse 1e-2 -> 20 dB
    y[1] = 0.01  # mse 1e-4 -> 40 dB
    np.testing.assert_allclose(psnr(x, y, reduction="none").numpy(), [20.0, 40.0], rtol=1e-6)
    assert psnr(x, y).item() == pytest.approx(30.0, rel=1e-6)  # mean of per-image values, not PSNR of mean MSE
    assert psnr(x * 255, y * 255, data_range=255.0).item() == pytest.approx(30.0, rel=1e-5)
    m = PSNR()
    m.update(x[:1], y[:1])
    m.update(x[1:], y[1:])
    assert m.compute().item() == pytest.approx(30.0, rel=1e-6)
    assert math.isinf(psnr(x, x).item())


def test_psnr_matches_numpy_over_batches() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 4, 8, 8, generator=g)
    y = (x + 0.05 * torch.randn(6, 4, 8, 8, generator=g)).clamp(0, 1)
    xn, yn = x.double().numpy(), y.double().numpy()
    expected = np.mean([10 * np.log10(1.0 / np.mean((a - b) ** 2)) for a, b in zip(xn, yn, strict=True)])
    a, b = PSNR(), PSNR()
    a.update(x[:4], y[:4])
    b.update(x[4:], y[4:])
    a.merge_state(b)  # what the DDP "sum" reduction does
    assert a.compute().item() == pytest.approx(expected, rel=1e-6)


def test_spectral_angle_hand_computed_and_zero_vectors() -> None:
    # 1 image, 2 channels, 1 x 6 pixels
    x = torch.tensor([[[[1.0, 1.0, 1.0, 0.0, 0.0, 3.0]], [[0.0, 1.0, 0.0, 0.0, 0.0, 4.0]]]])
    y = torch.tensor([[[[0.0, 1.0, 2.0, 0.0, 1.0, -3.0]], [[1.0, 0.0, 0.0, 0.0, 1.0, -4.0]]]])
    # angles: 90, 45, 0, both zero -> 0, one zero -> 90, opposite -> 180
    expected = (90 + 45 + 0 + 0 + 90 + 180) / 6
    assert spectral_angle(x, y).item() == pytest.approx(expected, abs=1e-5)
    m = SpectralAngle()
    m.update(x, y)
    assert m.compute().item() == pytest.approx(expected, abs=1e-5)
    assert not torch.isnan(m.compute())


def test_spectral_angle_matches_numpy_and_torchmetrics() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 5, 6, 7, generator=g) + 0.1
    y = torch.rand(3, 5, 6, 7, generator=g) + 0.1
    xn, yn = x.double().numpy(), y.double().numpy()
    cos = (xn * yn).sum(1) / (np.linalg.norm(xn, axis=1) * np.linalg.norm(yn, axis=1))
    expected = np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()
    m = SpectralAngle()
    m.update(x[:2], y[:2])
    m.update(x[2:], y[2:])
    assert m.compute().item() == pytest.approx(expected, rel=1e-5)
    assert spectral_angle(x, y).item() == pytest.approx(
        math.degrees(spectral_angle_mapper(x.double(), y.double()).item()), rel=1e-5
    )
    # identical spectra up to scale: ~0, without acos' float32 error near 1
    assert spectral_angle(x, 3 * x).item() == pytest.approx(0.0, abs=1e-4)


def test_bpppc() -> None:
    assert bpppc(8 * 1000, 100 * 100, 8) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        bpppc(10.0, 0, 3)


def test_bd_hand_checks() -> None:
    assert bd_psnr(REF_RATE, REF_PSNR, REF_RATE, REF_PSNR + 1.0) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(REF_RATE, REF_PSNR, 0.9 * REF_RATE, REF_PSNR) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(REF_RATE, REF_PSNR, REF_RATE, REF_PSNR) == pytest.approx(0.0, abs=1e-9)
    # order of points does not matter
    assert bd_psnr(REF_RATE[::-1], REF_PSNR[::-1], REF_RATE, REF_PSNR - 0.5) == pytest.approx(-0.5, abs=1e-9)


def test_bd_rate_partial_overlap_analytic() -> None:
    # ref: log10 R = P / 10 on P in [25, 40]; test: log10 R = P / 10 - 0.001 (P - 35)^2 on P in [30, 45].
    # A cubic fits both exactly; the overlap is [30, 40] and the mean gap there is
    # -0.001 * (1/10) * int_{-5}^{5} u^2 du = -0.001 * 250 / 30.
    p_ref = np.array([25.0, 30.0, 35.0, 40.0])
    p_test = np.array([30.0, 35.0, 40.0, 45.0])
    r_ref = 10 ** (p_ref / 10)
    r_test = 10 ** (p_test / 10 - 0.001 * (p_test - 35) ** 2)
    gap = -0.001 * 250 / 30
    assert bd_rate(r_ref, p_ref, r_test, p_test) == pytest.approx((10**gap - 1) * 100, abs=1e-8)


def test_bd_psnr_linear_curves() -> None:
    # PSNR = 10 log10 R + 30 vs + 31 over partially overlapping rate ranges -> exactly 1 dB
    r_ref = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    r_test = np.array([0.3, 0.6, 1.2, 2.4])
    assert bd_psnr(r_ref, 10 * np.log10(r_ref) + 30, r_test, 10 * np.log10(r_test) + 31) == pytest.approx(1.0, abs=1e-9)
    # and at equal PSNR the test curve needs 10**-0.1 of the rate
    assert bd_rate(r_ref, 10 * np.log10(r_ref) + 30, r_test, 10 * np.log10(r_test) + 31) == pytest.approx(
        (10**-0.1 - 1) * 100, abs=1e-8
    )


@pytest.mark.parametrize(
    ("rate", "dist", "match"),
    [
        ([0.1, 0.2, 0.4], [30.0, 32.0, 34.0], "at least 4"),
        ([0.1, 0.2, 0.4, float("nan")], [30.0, 32.0, 34.0, 36.0], "finite"),
        ([0.1, 0.2, 0.2, 0.8], [30.0, 32.0, 34.0, 36.0], "strictly monotonic"),
        ([0.1, 0.2, 0.4, 0.8], [30.0, 33.0, 32.0, 36.0], "strictly increase"),
        ([0.0, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0], "> 0"),
        ([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0], "equal length"),
    ],
)
def test_bd_validation(rate: list[float], dist: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bd_rate(REF_RATE, REF_PSNR, rate, dist)
    with pytest.raises(ValueError, match=match):
        bd_psnr(rate, dist, REF_RATE, REF_PSNR)


def test_bd_no_overlap() -> None:
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(REF_RATE, REF_PSNR, REF_RATE, REF_PSNR + 20)
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(REF_RATE, REF_PSNR, REF_RATE * 100, REF_PSNR)
