"""lrdm: Low-Rank Residual Diffusion Models (LRDM) on top of Residual Denoising Diffusion Models (RDDM)."""

__version__ = "0.1.0"
