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


JPEG_SUFFIXES = {".jpg", ".jpeg"}
EXACT_COUNT_SUFFIXES = {".avi", ".mp4", ".mov", ".m4v"}  # containers that index every frame


def read_image(path: Path, index: int) -> Frame:
    """Read one image file; unreadable or truncated files become a Frame with ``error``."""
    name, image_id = path.stem, image_id_for(path, index)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as err:
        return Frame(name, image_id, None, f"cannot read image {path}: {err.strerror or err}")
    if path.suffix.lower() in JPEG_SUFFIXES and data.size and not _jpeg_complete(data):
        # cv2.imread would pad a cut-off JPEG with grey and only warn on stderr
        return Frame(name, image_id, None, f"truncated JPEG {path}: no end-of-image marker")
    image = (cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
             if data.size else None)
    if image is None:
        return Frame(name, image_id, None, f"cannot read image {path}: not a readable image")
    return Frame(name, image_id, image)


def _jpeg_complete(data: np.ndarray) -> bool:
    """The file ends with JPEG's end-of-image marker (FF D9), trailing zeros or newlines aside."""
    tail = data[-64:].tobytes().rstrip(b"\x00\r\n ")
    return tail.endswith(b"\xff\xd9")


def _video_frames(cap: cv2.VideoCapture, stem: str, limit: int | None,
                  expected: int | None = None, where: str = "") -> Iterator[Frame]:
    """Frames of an open capture; when the stream ends more than a frame's rounding short of
    ``expected`` (what the container says it holds), one last Frame carries the error."""
    index = 0
    try:
        while limit is None or index < limit:
            ok, image = cap.read()
            if not ok:
                if expected is not None and index < expected:
                    yield Frame(f"{stem}_{index:06d}", index, None,
                                f"video {where} ended after {index} of its {expected} frames "
                                "(truncated or corrupt)")
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
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        slack = 0 if suffix in EXACT_COUNT_SUFFIXES else max(1, claimed // 50)  # estimated counts
        expected = claimed - slack if claimed > slack else None
        return Source("video", _video_frames(cap, path.stem, max_frames, expected, str(path)),
                      total, path.stem, fps)
    if suffix in IMAGE_SUFFIXES:
        return Source("image", iter([read_image(path, 0)]), 1, path.stem)
    raise ValueError(f"input {spec!r}: unknown file type {suffix!r}; images: "
                     f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))}")
