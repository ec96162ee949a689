"""Writes what run.py produces: a JSON Lines stream, the COCO JSON, rendered images / video /
camera frames, raw .npz.

A frame goes through two steps. :meth:`Writer.render` (any thread, several at once) draws the
frame and formats its JSON line; :meth:`Writer.emit` (one thread, in frame order) appends the
line to ``results.jsonl`` with one ``write`` call, flushed, so a killed run keeps every finished
frame and a reader never meets half a line, and hands the picture on (a video's encoder runs on
a thread of its own). ``close`` writes ``results.json``, the COCO results list, from the stream:
nothing grows in memory with the running time of a camera.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import orjson
from tqdm import tqdm

from .atomic import atomic_path, remove_stale
from .pipeline import Prediction
from .results import coco_results, draw_people, write_image_atomic
from .sources import Frame, Source

logger = logging.getLogger(__name__)

JSONL_NAME = "results.jsonl"
JSON_NAME = "results.json"


def display_available() -> bool:
    """True when a window can be shown (a display, and an OpenCV build with GUI support)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return False
    try:
        cv2.namedWindow("LitePose")
    except cv2.error:
        return False
    return True


@dataclass
class Rendered:
    """One frame ready to emit: its JSON line (bytes, newline-terminated), the drawn picture."""

    line: bytes
    people: int
    canvas: np.ndarray | None = None
    raw: dict | None = None
    error: str | None = None
    track_ids: tuple[int, ...] = ()


class VideoEncoder:
    """``cv2.VideoWriter`` on a thread of its own behind a bounded queue (frames stay in order;
    OpenCV releases the GIL while it encodes). An encoding error is raised by the next call."""

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int], depth: int = 4):
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="litepose-video", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (canvas := self._queue.get()) is not None:
            try:
                if self._error is None:
                    self._writer.write(canvas)
            except BaseException as err:  # raised on the caller's thread
                self._error = err

    def write(self, canvas: np.ndarray) -> None:
        if self._error is not None:
            raise RuntimeError(f"video encoding failed: {self._error}") from self._error
        self._queue.put(canvas)

    def close(self) -> None:
        """Encode what is queued and finish the file."""
        self._queue.put(None)
        self._thread.join()
        self._writer.release()
        if self._error is not None:
            raise RuntimeError(f"video encoding failed: {self._error}") from self._error


def frame_line(frame: Frame, pred: Prediction | None, error: str | None = None) -> tuple[bytes, int]:
    """The JSON line of one frame and its number of people: ``{"frame", "image_id", "people":
    [COCO results]}``, plus ``"error"`` for an unreadable frame."""
    results = ([] if pred is None
               else coco_results(pred.people, pred.scores, frame.image_id, pred.track_ids))
    record = {"frame": frame.name, "image_id": frame.image_id, "people": results}
    if error is not None:
        record["error"] = error
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE), len(results)


class Writer:
    """Renders and emits frames; ``close`` finishes the JSON and the video."""

    def __init__(self, output: Path, source: Source, skeleton, banner: str | None,
                 render: bool = True, save_raw: bool = False, progress: bool = True,
                 show_ids: bool = False):
        self.output, self.source, self.skeleton, self.banner = output, source, skeleton, banner
        self.render_frames, self.save_raw, self.show_ids = render, save_raw, show_ids
        self.people = 0
        self.frames = 0
        self.track_ids: set[int] = set()  # every track id written (-1, no track, aside)
        self.failures: list[str] = []
        self.json_path = output / JSON_NAME
        self.jsonl_path = output / JSONL_NAME
        self.progress = tqdm(total=source.total, unit="frame", leave=False,
                             disable=not (progress and source.kind in ("folder", "video")))
        self.window = render and source.live and display_available()
        self._video: VideoEncoder | None = None
        self._files = ExitStack()  # the video's temporary file until close()
        self.video_path = output / f"{source.name}_pose.mp4"
        for path in (self.json_path, self.video_path):  # a killed run's temporaries
            for stale in remove_stale(path):
                logger.info("removed %s, left by an interrupted run", stale)
        if save_raw:
            (output / "raw").mkdir(exist_ok=True)
        self._jsonl = os.open(self.jsonl_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                              0o666)

    @property
    def tracks(self) -> int:
        return len(self.track_ids)

    def render(self, frame: Frame, pred: Prediction | None) -> Rendered:
        """Draw and format one frame (thread-safe; ``pred`` None: the frame was unreadable)."""
        if pred is None:
            line, _ = frame_line(frame, None, str(frame.error))
            return Rendered(line, 0, error=str(frame.error))
        line, people = frame_line(frame, pred)
        canvas = (draw_people(frame.image, pred.people, self.skeleton, self.banner,
                              pred.track_ids, self.show_ids)
                  if self.render_frames else None)
        tracks = () if pred.track_ids is None else tuple(pred.track_ids.tolist())
        return Rendered(line, people, canvas, pred.raw, track_ids=tracks)

    def emit(self, frame: Frame, done: Rendered) -> bool:
        """Write one rendered frame, in frame order; False when the user asked to stop."""
        data = memoryview(done.line)
        while data:  # one write for a regular file; the loop only guards a short write
            data = data[os.write(self._jsonl, data):]
        self.frames += 1
        self.people += done.people
        self.track_ids.update(t for t in done.track_ids if t >= 0)
        keep_going = True
        if done.error is not None:
            self.failures.append(done.error)
            tqdm.write(f"skipped: {done.error}", file=sys.stderr)
        else:
            if self.save_raw and done.raw is not None:
                np.savez(self.output / "raw" / f"{frame.name}.npz", **done.raw)
            if done.canvas is not None:
                keep_going = self._show(frame, done.canvas)
        self.progress.update()
        return keep_going

    def write(self, frame: Frame, pred: Prediction | None) -> bool:
        """Render and emit one frame on the calling thread."""
        return self.emit(frame, self.render(frame, pred))

    def _show(self, frame: Frame, canvas: np.ndarray) -> bool:
        if self.source.kind == "video":
            if self._video is None:
                tmp = self._files.enter_context(atomic_path(self.video_path))
                h, w = canvas.shape[:2]
                self._video = VideoEncoder(tmp, self.source.fps, (w, h))
            self._video.write(canvas)
            return True
        if self.window:
            cv2.imshow("LitePose", canvas)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        write_image_atomic(self.output / f"{frame.name}.jpg", canvas)
        return True

    def close(self) -> None:
        """Write ``results.json`` (atomically, streamed from the JSON Lines) and move a
        finished video into place."""
        self.progress.close()
        os.close(self._jsonl)
        write_coco_json(self.jsonl_path, self.json_path)
        try:
            if self._video is not None:
                self._video.close()
        finally:
            self._files.close()  # moves a finished video into place
        if self.window:
            cv2.destroyAllWindows()


def read_jsonl(path: Path):
    """The frame records of a ``results.jsonl``, in order; a last line without its newline
    (a writer killed mid-line, which this writer never leaves) is ignored."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                yield json.loads(line)


def write_coco_json(jsonl: Path, path: Path) -> None:
    """The COCO keypoint results list of every frame in ``jsonl``, written to ``path``
    atomically, one frame at a time."""
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        out.write("[")
        first = True
        for record in read_jsonl(jsonl):
            for person in record["people"]:
                out.write(("" if first else ", ") + json.dumps(person))
                first = False
        out.write("]")
