"""Residual-shifting diffusion (ResShift, Yue et al. 2023): η schedule, forward process, posterior and sampler."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


def exponential_sqrt_etas(
    steps: int = 4, kappa: float = 2.0, min_noise_level: float = 0.2, etas_end: float = 0.99, power: float = 0.3
) -> Tensor:
    """√η_t of the exponential schedule, t = 1..T (float64).

    √η_t = η_start · b^{(t'/(T-1))^p · (T-1)} with t' = t - 1, η_start = min(min_noise_level/κ, min_noise_level)
    and b = (etas_end/η_start)^{1/(T-1)}, so √η_1 = η_start and √η_T = etas_end.
    """
    if steps < 2:
        raise ValueError(f"the schedule needs at least 2 steps, got {steps}")
    eta_start = min(min_noise_level / kappa, min_noise_level)
    base = math.exp(math.log(etas_end / eta_start) / (steps - 1))
    exponent = torch.linspace(0, 1, steps, dtype=torch.float64) ** power * (steps - 1)
    return eta_start * base**exponent


class ResShiftDiffusion(nn.Module):
    """The Markov chain that shifts the residual ``y - x0`` with noise, in latent or pixel space.

    q(x_t | x0, y) = N(x0 + η_t (y - x0), κ² η_t I); the network predicts x0 from ``x_t / sqrt(κ² η_t + 1)``
    (``normalize_input``); the posterior mean is (η_{t-1}/η_t) x_t + (α_t/η_t) x0 with variance
    κ² η_{t-1} α_t / η_t, α_t = η_t - η_{t-1}, η_0 = 0. Indexes ``t`` are 0-based (0..T-1).

    Args:
        steps: T.
        kappa: κ (noise variance scale).
        min_noise_level: Sets η_start.
        etas_end: √η_T.
        power: Schedule power p.
        normalize_input: Scale the network input by 1/sqrt(κ²η_t + 1).
    """

    etas: Tensor
    sqrt_etas: Tensor
    etas_prev: Tensor
    alphas: Tensor
    posterior_variance: Tensor
    posterior_log_variance_clipped: Tensor
    posterior_mean_coef1: Tensor
    posterior_mean_coef2: Tensor

    def __init__(
        self, steps: int = 4, kappa: float = 2.0, min_noise_level: float = 0.2, etas_end: float = 0.99,
        power: float = 0.3, normalize_input: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.steps, self.kappa, self.normalize_input = steps, kappa, normalize_input
        sqrt_etas = exponential_sqrt_etas(steps, kappa, min_noise_level, etas_end, power)
        etas = sqrt_etas**2
        etas_prev = torch.cat([etas.new_zeros(1), etas[:-1]])
        alphas = etas - etas_prev
        variance = kappa**2 * etas_prev / etas * alphas
        clipped = torch.cat([variance[1:2], variance[1:]])  # t=0 has zero variance: log uses the next one
        buffers = {
            "etas": etas, "sqrt_etas": sqrt_etas, "etas_prev": etas_prev, "alphas": alphas,
            "posterior_variance": variance, "posterior_log_variance_clipped": torch.log(clipped),
            "posterior_mean_coef1": etas_prev / etas, "posterior_mean_coef2": alphas / etas,
        }  # fmt: skip
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)

    @staticmethod
    def _at(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: Tensor, y: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Sample x_t ~ q(x_t | x0, y)."""
        noise = torch.randn_like(x0) if noise is None else noise
        return x0 + self._at(self.etas, t, x0) * (y - x0) + self.kappa * self._at(self.sqrt_etas, t, x0) * noise

    def scale_input(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Network input: x_t / sqrt(κ² η_t + 1) (identity without ``normalize_input``)."""
        if not self.normalize_input:
            return x_t
        return x_t / torch.sqrt(self.kappa**2 * self._at(self.etas, t, x_t) + 1)

    def posterior_mean_variance(self, x_t: Tensor, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x0)."""
        mean = self._at(self.posterior_mean_coef1, t, x_t) * x_t + self._at(self.posterior_mean_coef2, t, x_t) * x0
        return mean, self._at(self.posterior_variance, t, x_t)

    def prior_sample(self, y: Tensor, noise: Tensor | None = None) -> Tensor:
        """x_T = y + κ √η_T ε."""
        noise = torch.randn_like(y) if noise is None else noise
        return y + self.kappa * float(self.sqrt_etas[-1]) * noise

    @torch.no_grad()
    def sample(
        self, denoise: Callable[[Tensor, Tensor], Tensor], y: Tensor, *, generator: torch.Generator | None = None,
        clip: tuple[float, float] | None = None,
    ) -> Tensor:  # fmt: skip
        """Run the reverse chain from x_T to x_0.

        Args:
            denoise: ``denoise(scaled_x_t, t) -> x0`` (the network; ``t`` is a long tensor of 0-based steps).
            y: Degraded (latent) image.
            generator: RNG for reproducible sampling.
            clip: Optional clamp of the predicted x0.
        """

        def randn(like: Tensor) -> Tensor:
            return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

        x = self.prior_sample(y, randn(y))
        for step in reversed(range(self.steps)):
            t = torch.full((y.shape[0],), step, device=y.device, dtype=torch.long)
            x0 = denoise(self.scale_input(x, t), t)
            if clip is not None:
                x0 = x0.clamp(*clip)
            mean, variance = self.posterior_mean_variance(x, x0, t)
            x = mean + (variance.sqrt() * randn(x) if step > 0 else 0.0)
        return x
