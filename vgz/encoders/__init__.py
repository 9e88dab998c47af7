"""Encoders: GAN inversion, images or frames -> StyleGAN latents (pSp)."""
