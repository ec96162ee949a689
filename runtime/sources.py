"""Frame sources: one image, a folder of images (sorted), a video file, or a camera index."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class Frame:
    """One frame: ``image`` is BGR uint8, or None with ``error`` set when it could not be read."""

    name: str  # file stem, or "<video stem>_<index>" / "camera_<index>"
    image_id: int
    image: np.ndarray | None
    error: str | None = None


@dataclass
class Source:
    """What to read and how many frames are expected (None: unknown, e.g. a camera)."""

    kind: str  # "image", "folder", "video" or "camera"
    frames: Iterator[Frame]
    total: int | None
    name: str = "input"  # stem used for outputs that cover the whole source (a video)
    fps: float = 30.0


def image_id_for(path: Path, index: int) -> int:
    """COCO / CrowdPose ids are the numeric file stem; other names get their position."""
    return int(path.stem) if path.stem.isdigit() else index


def read_image(path: Path, index: int) -> Frame:
    """Read one image file; unreadable files become a Frame with ``error``."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        return Frame(path.stem, image_id_for(path, index), None, f"cannot read image {path}")
    return Frame(path.stem, image_id_for(path, index), image)


def _video_frames(cap: cv2.VideoCapture, stem: str, limit: int | None) -> Iterator[Frame]:
    index = 0
    try:
        while limit is None or index < limit:
            ok, image = cap.read()
            if not ok:
                break
            yield Frame(f"{stem}_{index:06d}", index, image)
            index += 1
    finally:
        cap.release()


def open_source(spec: str, max_frames: int | None = None) -> Source:
    """Open ``spec``: an image file, a folder, a video file or a camera index ("0")."""
    if spec.isdigit():
        cap = cv2.VideoCapture(int(spec))
        if not cap.isOpened():
            raise ValueError(f"cannot open camera {spec}")
        return Source("camera", _video_frames(cap, f"camera{spec}", max_frames), None,
                      f"camera{spec}")
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files = files[:max_frames] if max_frames else files
        return Source("folder", (read_image(p, i) for i, p in enumerate(files)), len(files),
                      path.name)
    if not path.exists():
        raise ValueError(f"input {spec!r} is neither a file, a folder nor a camera index")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path}")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        if max_frames and total:
            total = min(total, max_frames)
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        return Source("video", _video_frames(cap, path.stem, max_frames), total, path.stem, fps)
    if suffix in IMAGE_SUFFIXES:
        return Source("image", iter([read_image(path, 0)]), 1, path.stem)
    raise ValueError(f"input {spec!r}: unknown file type {suffix!r}; images: "
                     f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))}")
