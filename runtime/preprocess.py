"""Letterbox pre-processing into the artifact's fixed input shape, keeping the transform."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """The similarity ``x' = scale * (x - center_x) + width / 2`` (same for y)."""

    scale: float
    center_x: float
    center_y: float
    width: int  # network input width W'
    height: int  # network input height H'

    def matrix(self) -> np.ndarray:
        """The 2x3 affine matrix for ``cv2.warpAffine``."""
        s = self.scale
        return np.array([[s, 0.0, self.width / 2 - s * self.center_x],
                         [0.0, s, self.height / 2 - s * self.center_y]])


def letterbox_for(image_hw: tuple[int, int], input_hw: tuple[int, int]) -> Letterbox:
    """Fit an ``h x w`` image into ``H' x W'``: aspect kept, scaled, centred, black padding.

    The centre is the reference's ``(int(w/2 + 0.5), int(h/2 + 0.5))``.
    """
    h, w = image_hw
    in_h, in_w = input_hw
    if h <= 0 or w <= 0:
        raise ValueError(f"empty image of size {w}x{h}")
    scale = min(in_w / w, in_h / h)
    return Letterbox(scale, float(int(w / 2 + 0.5)), float(int(h / 2 + 0.5)), in_w, in_h)


def preprocess(image_bgr: np.ndarray, input_hw: tuple[int, int], mean, std,
               scale: float = 1 / 255) -> tuple[np.ndarray, Letterbox]:
    """BGR uint8 ``(h, w, 3)`` -> RGB float32 ``(1, 3, H', W')``, ``(x * scale - mean) / std``,
    and its transform.

    Bilinear warp with a constant black border before normalisation, as the reference does.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected a colour image (h, w, 3), got shape {image_bgr.shape}")
    box = letterbox_for(image_bgr.shape[:2], input_hw)
    warped = cv2.warpAffine(image_bgr, box.matrix(), (box.width, box.height),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    rgb = cv2.cvtColor(warped, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb /= np.float32(1 / scale)  # scale 1/255: exactly the reference's / 255
    rgb = (rgb - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), box
