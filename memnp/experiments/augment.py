"""CIFAR-10 training augmentation (docs/model.md §5): random translation by up to 10 % of height and width,
then a random horizontal flip, as the reference's Keras RandomTranslation(0.1, 0.1) and
RandomFlip("horizontal") layers do.

Each image is shifted by (dy, dx) drawn uniformly from [-0.1 H, 0.1 H] x [-0.1 W, 0.1 W] pixels
(fractional shifts, bilinear interpolation, 'reflect' fill at the borders), then flipped left-right
with probability 1/2. Images are NHWC float arrays; the output has the input's shape and dtype.
"""
import numpy as np
from scipy import ndimage

TRANSLATION = 0.1


def translate_flip(images, rng, fraction=TRANSLATION):
    """Augmented copy of images (N, H, W, C), every draw from ``rng``."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C); got {images.shape}")
    n, height, width, _ = images.shape
    dy = rng.uniform(-fraction * height, fraction * height, n)
    dx = rng.uniform(-fraction * width, fraction * width, n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        shifted = ndimage.shift(images[i], (dy[i], dx[i], 0.0), order=1, mode="reflect")
        out[i] = shifted[:, ::-1] if flip[i] else shifted
    return out


def augment(images, rng, kind):
    """``kind`` "none" (the images themselves) or "translate-flip"."""
    if kind == "none":
        return images
    if kind == "translate-flip":
        return translate_flip(images, rng)
    raise ValueError(f"augmentation must be 'none' or 'translate-flip'; got {kind!r}")
