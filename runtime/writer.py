"""Writes what run.py produces: COCO JSON, rendered images / video / camera frames, raw .npz."""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .atomic import atomic_path, write_json_atomic
from .pipeline import Prediction
from .results import coco_results, draw_people, write_image_atomic
from .sources import Frame, Source

logger = logging.getLogger(__name__)


def display_available() -> bool:
    """True when a window can be shown (a display, and an OpenCV build with GUI support)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return False
    try:
        cv2.namedWindow("LitePose")
    except cv2.error:
        return False
    return True


class Writer:
    """Collects results per frame and writes them; ``close`` finishes the JSON and the video."""

    def __init__(self, output: Path, source: Source, skeleton, banner: str | None,
                 render: bool = True, save_raw: bool = False, progress: bool = True):
        self.output, self.source, self.skeleton, self.banner = output, source, skeleton, banner
        self.render, self.save_raw = render, save_raw
        self.results: list[dict] = []
        self.people = 0
        self.json_path = output / "results.json"
        self.progress = tqdm(total=source.total, unit="frame", leave=False,
                             disable=not (progress and source.kind in ("folder", "video")))
        self.window = render and source.kind == "camera" and display_available()
        self._video = None
        self._files = ExitStack()  # the video's temporary file until close()
        if save_raw:
            (output / "raw").mkdir(exist_ok=True)

    def advance(self) -> None:
        """Count a frame that produced nothing (unreadable)."""
        self.progress.update()

    def write(self, frame: Frame, pred: Prediction) -> bool:
        """Record one frame; False when the user asked to stop (camera window)."""
        self.results += coco_results(pred.people, pred.scores, frame.image_id)
        self.people += len(pred.people)
        if self.save_raw:
            np.savez(self.output / "raw" / f"{frame.name}.npz", **pred.raw)
        keep_going = True
        if self.render:
            canvas = draw_people(frame.image, pred.people, self.skeleton, self.banner)
            keep_going = self._emit(frame, canvas)
        self.progress.update()
        return keep_going

    def _emit(self, frame: Frame, canvas: np.ndarray) -> bool:
        if self.source.kind == "video":
            if self._video is None:
                tmp = self._files.enter_context(
                    atomic_path(self.output / f"{self.source.name}_pose.mp4"))
                h, w = canvas.shape[:2]
                self._video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                              self.source.fps, (w, h))
            self._video.write(canvas)
            return True
        if self.window:
            cv2.imshow("LitePose", canvas)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        write_image_atomic(self.output / f"{frame.name}.jpg", canvas)
        return True

    def close(self) -> None:
        """Write the JSON (atomically) and move a finished video into place."""
        self.progress.close()
        write_json_atomic(self.json_path, self.results)
        if self._video is not None:
            self._video.release()
        self._files.close()  # moves a finished video into place
        if self.window:
            cv2.destroyAllWindows()
