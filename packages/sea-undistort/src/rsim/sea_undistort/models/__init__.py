"""Pure ``nn.Module`` s: residual-shifting diffusion, Swin-UNet denoiser, VQ autoencoder, NAFNet-style baseline."""

from rsim.sea_undistort.models.autoencoder import PixelSpace, VQAutoencoder, load_autoencoder
from rsim.sea_undistort.models.baseline import NAFBlock, NAFUNet
from rsim.sea_undistort.models.diffusion import ResShiftDiffusion, exponential_sqrt_etas
from rsim.sea_undistort.models.resshift import ResShift
from rsim.sea_undistort.models.swin_unet import LQEncoder, SwinUNet

__all__ = [
    "LQEncoder",
    "NAFBlock",
    "NAFUNet",
    "PixelSpace",
    "ResShift",
    "ResShiftDiffusion",
    "SwinUNet",
    "VQAutoencoder",
    "exponential_sqrt_etas",
    "load_autoencoder",
]
