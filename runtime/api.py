"""The kit's Python API: a compiled LitePose artifact as one object you call on images.

    import cv2
    from runtime import PoseEstimator

    est = PoseEstimator("build/xs-host", threads=2)
    people = est(cv2.imread("photo.jpg"))          # People: keypoints (P, J, 3), scores, boxes
    for frame in frames:                            # video: the same people keep their ids
        people = est.track(frame)                   # people.track_ids (P,)

It runs the same stages as ``runtime/run.py`` (which is a command line over it): pre-process,
the library's network and merge, grouping, and for video the tracker and smoother.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import Artifact, check_threads, configure_threads
from .pipeline import Pipeline, Prediction
from .postprocess import DecodeConfig
from .results import joint_boxes
from .smoothing import KeypointSmoother, OneEuroConfig
from .sources import Source
from .stages import Runner
from .steps import Sink
from .tracking import Tracker, TrackerConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class People:
    """The people found in one image, in original-image pixels.

    keypoints : (P, J, 3) float32
        ``[x, y, score]`` per joint (``ArtifactMeta.keypoints`` order); absent joints score 0.
    scores : (P,) float32
        Person scores (mean joint value, as LitePose ranks people).
    boxes : (P, 4) float32
        ``[x, y, w, h]`` around the joints that scored above 0 (COCO's ``bbox``).
    track_ids : (P,) int64 or None
        From :meth:`PoseEstimator.track` (-1: no track); None from a plain call.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    track_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def from_prediction(cls, pred: Prediction) -> People:
        kp = np.ascontiguousarray(pred.people[:, :, :3], np.float32)
        return cls(kp, np.asarray(pred.scores, np.float32),
                   joint_boxes(pred.people).astype(np.float32), pred.track_ids)


class PoseEstimator:
    """LitePose on images and video through a compiled artifact.

    Parameters
    ----------
    model : str or Path, or a loaded artifact
        An artifact folder (``model.so`` + ``metadata.json``), or an ``Artifact``-like engine
        (``meta`` and ``infer``; the tests' oracle).
    flip, fast, adjust, refine, detection_threshold, tag_threshold, max_people
        Decoding options (:class:`runtime.postprocess.DecodeConfig`; LitePose's defaults).
    threads : int
        TVM worker threads (0: TVM's default); set on each thread that first calls the model.
    cores : {"default", "big", "little"}
        Pin TVM's workers to one cluster of a big.LITTLE board.
    tracking : TrackerConfig
        How :meth:`track` matches people across frames.
    smoothing : OneEuroConfig, optional
        One-Euro filtering of tracked keypoints (None: off).
    fps : float
        Frame rate :meth:`track` assumes for smoothing.
    """

    def __init__(self, model: str | Path | Artifact, *, flip: bool = False, fast: bool = False,
                 adjust: bool = True, refine: bool = True, detection_threshold: float | None = None,
                 tag_threshold: float | None = None, max_people: int | None = None,
                 threads: int = 0, cores: str = "default",
                 tracking: TrackerConfig | None = None, smoothing: OneEuroConfig | None = None,
                 fps: float = 30.0):
        check_threads(threads, cores)
        defaults = DecodeConfig()
        self.config = DecodeConfig(
            flip=flip, fast=fast, adjust=adjust, refine=refine,
            detection_threshold=_or(detection_threshold, defaults.detection_threshold),
            tag_threshold=_or(tag_threshold, defaults.tag_threshold),
            max_people=_or(max_people, defaults.max_people))
        self.threads, self.cores = threads, cores
        self.tracking = tracking or TrackerConfig()
        self.smoothing, self.fps = smoothing, fps
        self.artifact = Artifact(model) if isinstance(model, (str, Path)) else model
        self.meta = self.artifact.meta
        self.pipeline = Pipeline(self.artifact, self.config)
        self._configured: set[int] = set()

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """One image through pre-process, network, merge and grouping (no tracking)."""
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError("expected a BGR image (H, W, 3) uint8 as cv2.imread gives, got "
                             + (f"shape {image_bgr.shape}" if isinstance(image_bgr, np.ndarray)
                                else type(image_bgr).__name__))
        if threading.get_ident() not in self._configured and hasattr(self.artifact, "vm"):
            configure_threads(self.threads, self.cores)  # TVM's pool is the calling thread's
            self._configured.add(threading.get_ident())
        x, box = self.pipeline.prepare(image_bgr)
        return self.pipeline.decode(self.pipeline.infer(x), box)

    def __call__(self, image_bgr: np.ndarray) -> People:
        """The people in one BGR image."""
        return People.from_prediction(self.predict(image_bgr))

    def track(self, frame_bgr: np.ndarray) -> People:
        """The people in the next frame of a video, with track ids (and smoothed keypoints
        with ``smoothing``); call it on the frames in order, :meth:`reset_tracking` between
        videos."""
        if self.pipeline.tracker is None:
            self.reset_tracking()
        return People.from_prediction(self.pipeline.track(self.predict(frame_bgr)))

    def reset_tracking(self, fps: float | None = None) -> None:
        """Forget all tracks (a new video or camera); ids start again at 1."""
        sigmas = self.meta.oks_sigmas
        if not sigmas:
            raise ValueError(f"{getattr(self.artifact, 'folder', 'the artifact')} records no OKS "
                             "sigmas (built by an older kit): rebuild it with 'python -m compile "
                             "build' to track people")
        self.pipeline.tracker = Tracker(sigmas, self.tracking)
        self.pipeline.smoother = (KeypointSmoother(fps or self.fps, self.smoothing)
                                  if self.smoothing is not None else None)

    def runner(self, source: Source, sink: Sink, *, track: bool = False, **options) -> Runner:
        """A :class:`runtime.stages.Runner` of ``source`` into ``sink`` (``runtime.writer.Writer``)
        on this estimator's pipeline, tracking people when ``track``; ``options`` go to Runner
        (placement, post_workers, keep_raw, setup_infer, setup_post)."""
        if track:
            self.reset_tracking(source.fps)
        else:
            self.pipeline.tracker = self.pipeline.smoother = None
        options.setdefault("setup_infer", lambda: configure_threads(self.threads, self.cores))
        return Runner(self.pipeline, source, sink, **options)


def _or(value, default):
    return default if value is None else value
