"""Frame sources: one image, a folder of images (sorted), a video file, a camera (an index or
``/dev/videoN``), or a network stream / GStreamer pipeline (whatever ``cv2.VideoCapture``
opens: ``rtsp://``, ``http(s)://`` ...)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
LIVE_KINDS = ("camera", "stream")  # no end known; a slow consumer drops the oldest frame
STREAM_TIMEOUT_MS = 10_000  # opening, and each read, of a network stream
_CAMERA_DEVICE = re.compile(r"/dev/video\d+")


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

    kind: str  # "image", "folder", "video", "camera" or "stream"
    frames: Iterator[Frame]
    total: int | None
    name: str = "input"  # stem used for outputs that cover the whole source (a video)
    fps: float = 30.0

    @property
    def live(self) -> bool:
        """A camera or stream: frames come at their own pace and have no known end."""
        return self.kind in LIVE_KINDS

    @property
    def video_like(self) -> bool:
        """Frames of one scene in time order (a video, camera or stream): worth tracking."""
        return self.kind == "video" or self.live


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


def _video_frames(cap, stem: str, limit: int | None, expected: int | None = None,
                  where: str = "", live: bool = False) -> Iterator[Frame]:
    """Frames of an open capture; when a file ends more than a frame's rounding short of
    ``expected`` (what the container says it holds), or a ``live`` stream stops before
    ``limit``, one last Frame carries the error."""
    index = 0
    try:
        while limit is None or index < limit:
            ok, image = cap.read()
            if not ok:
                if expected is not None and index < expected:
                    yield Frame(f"{stem}_{index:06d}", index, None,
                                f"video {where} ended after {index} of its {expected} frames "
                                "(truncated or corrupt)")
                elif live:
                    yield Frame(f"{stem}_{index:06d}", index, None,
                                f"stream {where} stopped after {index} frames (no frame within "
                                f"{STREAM_TIMEOUT_MS / 1000:.0f} s, or the sender closed it)")
                break
            yield Frame(f"{stem}_{index:06d}", index, image)
            index += 1
    finally:
        cap.release()


def is_stream(spec: str) -> bool:
    """A URL OpenCV's FFmpeg backend reads (``rtsp://host/...``) or a GStreamer pipeline."""
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    return scheme in STREAM_SCHEMES or " ! " in spec


def open_capture(spec: str):
    """``cv2.VideoCapture`` for a stream: GStreamer for a pipeline, else FFmpeg with open
    and read timeouts (a dead host then fails within ``STREAM_TIMEOUT_MS``, not never)."""
    if " ! " in spec:
        return cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
    return cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                   cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])


def _stream_name(spec: str) -> str:
    """A file stem for a stream's outputs: ``rtsp://cam.local:554/live`` -> ``cam.local_live``."""
    rest = spec.split("://", 1)[-1].split("?", 1)[0].split("@")[-1]
    return re.sub(r"[^A-Za-z0-9.-]+", "_", re.sub(r":\d+", "", rest)).strip("_")[:60] or "stream"


def _sane_fps(fps: float) -> float:
    """The capture's frame rate, 30 where it reports none or nonsense (RTSP often says 90000)."""
    return fps if 1.0 <= fps <= 240.0 else 30.0


def open_source(spec: str, max_frames: int | None = None,
                capture: Callable[[str], object] | None = None) -> Source:
    """Open ``spec``: an image file, a folder, a video file, a camera (index or
    ``/dev/videoN``) or a stream; ``capture(spec)`` opens streams (default
    :func:`open_capture`), returning a ``cv2.VideoCapture``-like object (``isOpened``,
    ``read``, ``get``, ``release``)."""
    if spec.isdigit() or _CAMERA_DEVICE.fullmatch(spec):
        cap = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
        if not cap.isOpened():
            raise ValueError(f"cannot open camera {spec}")
        name = f"camera{spec}" if spec.isdigit() else spec.rsplit("/", 1)[-1]
        return Source("camera", _video_frames(cap, name, max_frames), None, name)
    if is_stream(spec):
        cap = (capture or open_capture)(spec)
        if not cap.isOpened():
            hint = ("this OpenCV build has no GStreamer support" if " ! " in spec
                    and re.search(r"GStreamer:\s+NO", cv2.getBuildInformation())
                    else f"unreachable, refused, or no video within {STREAM_TIMEOUT_MS / 1000:.0f} s")
            raise ValueError(f"cannot open stream {spec!r}: {hint}")
        name = _stream_name(spec)
        return Source("stream", _video_frames(cap, name, max_frames, where=spec, live=True), None,
                      name, _sane_fps(cap.get(cv2.CAP_PROP_FPS)))
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files = files[:max_frames] if max_frames else files
        return Source("folder", (read_image(p, i) for i, p in enumerate(files)), len(files),
                      path.name)
    if not path.exists():
        raise ValueError(f"input {spec!r} is neither a file, a folder, a camera (index or "
                         f"/dev/videoN) nor a stream URL ({', '.join(STREAM_SCHEMES)})")
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
