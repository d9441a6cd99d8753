"""rate + lambda * MSE training of HyVIC and baselines, with an auxiliary quantile optimiser."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from rsim.core.metrics import PSNR, SpectralAngle
from rsim.hyvic.checkpoint import ARCHITECTURES, build_model
from rsim.hyvic.models.baselines import HyCASSLike
from rsim.hyvic.models.hyvic import HyVICConfig, rate_bpppc
from torch import Tensor, nn

# lambda ladder for rate in bpppc + lambda * MSE on [0, 1] data [assumption: HyVIC's values are unknown].
LAMBDA_LADDER = (100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0, 300000.0)


class HyVICTask(LightningModule):
    """Train a learned HSI codec with ``L = R + lambda * distortion_scale * MSE``.

    ``R`` is the likelihood rate in bits per pixel per channel (y and z). The main optimiser (Adam) updates
    all parameters except the entropy bottleneck's ``quantiles``; a second Adam minimises ``aux_loss()``
    on the quantiles (manual optimisation). ``architecture="hycass"`` trains the deterministic HyCASS-like
    AE with plain MSE instead (rate fixed at 32 / CR).

    Args:
        architecture: ``hyvic``, ``mbt2018-mean``, ``bmshj2018-hyperprior`` or ``hycass``.
        model_config: :class:`HyVICConfig` fields (``hyvic``/``hycass``) or ``in_channels``/``N``/``M``.
        lmbda: Rate-distortion trade-off (one model per lambda).
        distortion_scale: Extra factor on MSE (1.0; CompressAI's 255**2 is for 8-bit RGB).
        lr: Main learning rate.
        aux_lr: Quantile (auxiliary) learning rate.
        grad_clip: Max gradient norm of the main optimiser (0 disables).
    """

    def __init__(
        self,
        architecture: str = "hyvic",
        model_config: dict[str, Any] | None = None,
        lmbda: float = 1000.0,
        distortion_scale: float = 1.0,
        lr: float = 1e-4,
        aux_lr: float = 1e-3,
        grad_clip: float = 1.0,
    ) -> None:
        super().__init__()
        if architecture not in (*ARCHITECTURES, "hycass"):
            raise ValueError(f"architecture must be one of {(*ARCHITECTURES, 'hycass')}, got {architecture!r}")
        cfg = dict(model_config or {})
        self.save_hyperparameters(
            {
                "architecture": architecture,
                "model_config": cfg,
                "lmbda": lmbda,
                "distortion_scale": distortion_scale,
                "lr": lr,
                "aux_lr": aux_lr,
                "grad_clip": grad_clip,
            }
        )
        self.architecture = architecture
        self.model: nn.Module = (
            HyCASSLike(HyVICConfig(**cfg)) if architecture == "hycass" else build_model(architecture, cfg)
        )
        self.lmbda, self.distortion_scale = lmbda, distortion_scale
        self.automatic_optimization = False
        self.val_psnr, self.val_sa = PSNR(data_range=1.0), SpectralAngle()
        self.test_psnr, self.test_sa = PSNR(data_range=1.0), SpectralAngle()

    @property
    def entropy_coded(self) -> bool:
        """Whether the model has learned entropy models (everything but ``hycass``)."""
        return self.architecture != "hycass"

    def losses(self, x: Tensor) -> dict[str, Tensor]:
        """Forward pass and loss terms: ``loss``, ``mse``, ``bpppc`` and ``x_hat``."""
        out = self.model(x)
        mse = F.mse_loss(out["x_hat"], x)
        if self.entropy_coded:
            rate = rate_bpppc(out["likelihoods"], x.shape[1], x.shape[2], x.shape[3])
            loss = rate + self.lmbda * self.distortion_scale * mse
        else:
            assert isinstance(self.model, HyCASSLike)
            rate = torch.tensor(self.model.bpppc, device=x.device)
            loss = mse
        return {"loss": loss, "mse": mse, "bpppc": rate, "x_hat": out["x_hat"]}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:  # noqa: D102
        x = batch["image"]
        opts = self.optimizers()
        opt = opts[0] if isinstance(opts, list) else opts
        out = self.losses(x)
        opt.zero_grad()
        self.manual_backward(out["loss"])
        if self.hparams["grad_clip"]:
            self.clip_gradients(
                opt,  # type: ignore[arg-type]
                gradient_clip_val=self.hparams["grad_clip"],
                gradient_clip_algorithm="norm",
            )
        opt.step()
        log = {"train/loss": out["loss"], "train/mse": out["mse"], "train/bpppc": out["bpppc"]}
        if self.entropy_coded and isinstance(opts, list):
            aux_opt = opts[1]
            aux = self.model.aux_loss()  # type: ignore[operator]
            aux_opt.zero_grad()
            self.manual_backward(aux)
            aux_opt.step()
            log["train/aux"] = aux.detach()
        self.log_dict(log, prog_bar=True, batch_size=x.shape[0])
        return out["loss"].detach()

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        x = batch["image"]
        out = self.losses(x)
        x_hat = out["x_hat"].clamp(0, 1)
        psnr, sa = (self.val_psnr, self.val_sa) if stage == "val" else (self.test_psnr, self.test_sa)
        psnr.update(x_hat, x)
        sa.update(x_hat, x)
        b = x.shape[0]
        self.log_dict(
            {f"{stage}/loss": out["loss"], f"{stage}/mse": out["mse"], f"{stage}/bpppc": out["bpppc"]},
            batch_size=b,
        )
        self.log(f"{stage}/psnr", psnr, batch_size=b, prog_bar=True)
        self.log(f"{stage}/sa", sa, batch_size=b)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> Any:  # noqa: D102
        main = [p for n, p in self.model.named_parameters() if not n.endswith(".quantiles")]
        opt = torch.optim.Adam(main, lr=self.hparams["lr"])
        if not self.entropy_coded:
            return opt
        aux = [p for n, p in self.model.named_parameters() if n.endswith(".quantiles")]
        return [opt, torch.optim.Adam(aux, lr=self.hparams["aux_lr"])]


__all__ = ["LAMBDA_LADDER", "HyVICTask"]
