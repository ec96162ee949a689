"""Track ids across video frames: people of each frame are matched to the tracks of the frames
before by OKS (the dataset's sigmas), greedily, against where a constant-velocity model expects
each track now (or, for a track lost for a while, where it was last seen, if that is closer);
a track unseen for more than ``buffer`` frames ends.

    tracker = Tracker(artifact.meta.oks_sigmas)
    ids = tracker.update(keypoints)  # (P, J, 3) [x, y, score] in pixels -> (P,) int

Defaults suit people walking past a camera at 25-30 frames/s (ByteTrack's one-second
buffer, mmpose's OKS threshold 0.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from kernels.oks import greedy_match, oks_matrix

logger = logging.getLogger(__name__)

NO_TRACK = -1  # a detection that matched no track and is too small to start one


@dataclass(frozen=True)
class TrackerConfig:
    """How tracks are matched, started and ended.

    oks_threshold
        The least OKS at which a detection continues a track (mmpose's ``tracking_thr``).
    buffer
        Frames a track stays matchable after it was last seen; past that it ends and the
        person, when seen again, gets a new id (ByteTrack's ``track_buffer``). A track seen
        in one frame only ends when the next frame does not continue it.
    min_joints
        Joints above ``joint_threshold`` a detection needs to start a track (fewer: it can
        still continue one, else it gets ``NO_TRACK``).
    joint_threshold
        A joint counts as seen where its score is above this (LitePose's detection threshold).
    velocity_smoothing
        Weight of the newest displacement in the exponentially smoothed velocity, 0-1.
    min_area
        Floor of the OKS scale (box area around a track's joints), pixels squared.
    duplicate_oks
        An unmatched detection this similar to a matched one is a second detection of that
        person (grouping splits a crowded person at times): it starts no track.
    """

    oks_threshold: float = 0.3
    buffer: int = 30
    min_joints: int = 3
    joint_threshold: float = 0.1
    velocity_smoothing: float = 0.5
    min_area: float = 16.0 * 16.0
    duplicate_oks: float = 0.7

    def __post_init__(self):
        checks = [("oks_threshold", 0.0 <= self.oks_threshold <= 1.0, "in [0, 1]"),
                  ("buffer", self.buffer >= 0, ">= 0"),
                  ("min_joints", self.min_joints >= 1, ">= 1"),
                  ("velocity_smoothing", 0.0 <= self.velocity_smoothing <= 1.0, "in [0, 1]"),
                  ("duplicate_oks", 0.0 < self.duplicate_oks <= 1.0, "in (0, 1]"),
                  ("min_area", self.min_area > 0, "> 0")]
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"tracker {name} must be {want}, got {getattr(self, name)}")


class Tracker:
    """Keeps track ids across frames; one ``update`` per frame, in frame order.

    Each track keeps every joint's position as of the frame it was last matched in (joints
    not seen then carried along with the person), the frame each joint was last seen in, and
    a per-person velocity (pixels per frame, the median displacement of the joints seen again,
    exponentially smoothed). It is expected at ``position + velocity * frames since``, so a
    person hidden for a few frames (crossing another) is found again where they walked to. A
    track lost for a while is also looked for where it was last seen; found there (a person
    who left the picture and came back, or stopped), its velocity starts again from 0.

    Parameters
    ----------
    sigmas : (J,) sequence of float
        The dataset's OKS sigmas (``ArtifactMeta.oks_sigmas``).
    config : TrackerConfig, optional
    **options
        ``TrackerConfig`` fields, instead of ``config``.
    """

    def __init__(self, sigmas, config: TrackerConfig | None = None, **options):
        self.sigmas = np.asarray(sigmas, np.float64)
        if self.sigmas.ndim != 1 or not len(self.sigmas) or (self.sigmas <= 0).any():
            raise ValueError(f"OKS sigmas must be a non-empty list of positive numbers, "
                             f"got {list(np.atleast_1d(self.sigmas))}")
        self.config = config or TrackerConfig(**options)
        j = len(self.sigmas)
        self.frame = -1
        self.next_id = 1
        self._ids = np.zeros(0, np.int64)  # (T,) the live tracks
        self._xy = np.zeros((0, j, 2), np.float32)  # joints as of the frame in _last
        self._score = np.zeros((0, j), np.float32)  # each joint's score when seen (0: never)
        self._seen = np.zeros((0, j), np.int64)  # the frame each joint was last seen in
        self._last = np.zeros(0, np.int64)  # the frame the track was last matched in
        self._velocity = np.zeros((0, 2), np.float32)  # pixels per frame
        self._hits = np.zeros(0, np.int64)  # frames the track was matched in

    @property
    def live(self) -> int:
        """Tracks that can still be matched."""
        return len(self._ids)

    def _known(self, rows=slice(None)) -> np.ndarray:
        """(T, J) the joints' scores, 0 where a joint was not seen within the buffer."""
        fresh = self.frame - self._seen[rows] <= self.config.buffer
        return np.where(fresh, self._score[rows], 0).astype(np.float32)

    def predicted(self) -> np.ndarray:
        """(T, J, 3) where each live track's joints are expected in the current frame; joints
        not seen within the buffer score 0."""
        gap = (self.frame - self._last).astype(np.float32)[:, None, None]
        xy = self._xy + self._velocity[:, None, :] * gap
        return np.concatenate([xy, self._known()[:, :, None]], axis=2)

    def similarity(self, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, P) OKS of each live track with each detection where the track is expected now
        or, for a track lost for a while, where it was last seen if that is closer; and (T, P)
        bool, True where the last-seen place was the closer."""
        cfg = self.config
        sim = oks_matrix(self.predicted(), kp, self.sigmas, cfg.joint_threshold, cfg.min_area)
        by_last = np.zeros(sim.shape, bool)
        lost = np.nonzero(self._last < self.frame - 1)[0]
        if len(lost):
            last = np.concatenate([self._xy[lost], self._known(lost)[:, :, None]], axis=2)
            there = oks_matrix(last, kp, self.sigmas, cfg.joint_threshold, cfg.min_area)
            by_last[lost] = there > sim[lost]
            sim[lost] = np.maximum(sim[lost], there)
        return sim, by_last

    def update(self, keypoints: np.ndarray) -> np.ndarray:
        """Match one frame's people to the tracks.

        Parameters
        ----------
        keypoints : (P, J, 3) float
            ``[x, y, score]`` in image pixels; absent joints score 0.

        Returns
        -------
        (P,) int64
            Track ids in the order given (``NO_TRACK``, -1, for a person that continues no
            track and has fewer than ``min_joints`` joints).
        """
        kp = np.ascontiguousarray(keypoints, np.float32)
        j = len(self.sigmas)
        if kp.ndim != 3 or kp.shape[1:] != (j, 3):
            raise ValueError(f"keypoints must be (P, {j}, 3) [x, y, score], got {kp.shape}")
        cfg = self.config
        self.frame += 1
        sim, by_last = self.similarity(kp)
        # tracks seen in the frame before choose first (ByteTrack's cascade): a track lost for
        # a while cannot take a person from the track that follows them
        active = self._last == self.frame - 1
        match = np.full(len(kp), -1, np.int64)
        for tracks in (np.nonzero(active)[0], np.nonzero(~active)[0]):
            free = np.nonzero(match < 0)[0]
            got = greedy_match(np.ascontiguousarray(sim[np.ix_(tracks, free)]), cfg.oks_threshold)
            match[free[got >= 0]] = tracks[got[got >= 0]]
        seen = kp[:, :, 2] > cfg.joint_threshold  # (P, J)
        ids = np.full(len(kp), NO_TRACK, np.int64)
        matched = np.nonzero(match >= 0)[0]
        self._continue(match[matched], kp[matched], seen[matched],
                       by_last[match[matched], matched])
        ids[matched] = self._ids[match[matched]]
        start = (match < 0) & (seen.sum(axis=1) >= cfg.min_joints)
        if start.any() and len(matched):  # a second detection of a person followed already
            dup = oks_matrix(kp[start], kp[matched], self.sigmas, cfg.joint_threshold,
                             cfg.min_area).max(axis=1) >= cfg.duplicate_oks
            start[np.nonzero(start)[0][dup]] = False
        new = np.nonzero(start)[0]
        ids[new] = self._start(kp[new], seen[new])
        # a track ends when lost longer than the buffer, or at once when it was seen in one
        # frame only (ByteTrack's unconfirmed tracks): a spurious detection leaves no track
        # behind, and the live tracks stay about as many as the people in view
        keep = (self.frame - self._last <= cfg.buffer) & (
            (self._hits > 1) | (self._last == self.frame))
        if not keep.all():
            logger.debug("frame %d: tracks %s ended", self.frame, self._ids[~keep].tolist())
            for name in ("_ids", "_xy", "_score", "_seen", "_last", "_velocity", "_hits"):
                setattr(self, name, getattr(self, name)[keep])
        return ids

    def _continue(self, tracks: np.ndarray, kp: np.ndarray, seen: np.ndarray,
                  at_last: np.ndarray) -> None:
        """Fold matched detections ``kp`` (M, J, 3) into ``tracks`` (M,); ``at_last`` (M,):
        found where last seen rather than where expected (the velocity starts again)."""
        if not len(tracks):
            return
        gap = (self.frame - self._last[tracks]).astype(np.float32)[:, None, None]  # >= 1
        expected = self._xy[tracks] + np.where(at_last[:, None, None], 0,
                                               self._velocity[tracks][:, None, :] * gap)
        both = seen & (self._known(tracks) > 0)  # (M, J): seen now and known before
        step = np.where(both[:, :, None], (kp[:, :, :2] - self._xy[tracks]) / gap, np.nan)
        measured = _row_median(step, both.sum(axis=1))  # a misgrouped joint is no step
        a = self.config.velocity_smoothing
        velocity = np.where(both.any(axis=1)[:, None],
                            a * measured + (1 - a) * self._velocity[tracks], self._velocity[tracks])
        self._velocity[tracks] = np.where(at_last[:, None], 0, velocity)
        self._xy[tracks] = np.where(seen[:, :, None], kp[:, :, :2], expected)
        self._score[tracks] = np.where(seen, kp[:, :, 2], self._score[tracks])
        self._seen[tracks] = np.where(seen, self.frame, self._seen[tracks])
        self._last[tracks] = self.frame
        self._hits[tracks] += 1

    def _start(self, kp: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """New tracks for detections ``kp`` (N, J, 3); their ids (N,)."""
        n = len(kp)
        new = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        self._ids = np.concatenate([self._ids, new])
        self._xy = np.concatenate([self._xy, kp[:, :, :2]])
        self._score = np.concatenate([self._score, np.where(seen, kp[:, :, 2], 0)])
        self._seen = np.concatenate([self._seen, np.full(seen.shape, self.frame)])
        self._last = np.concatenate([self._last, np.full(n, self.frame)])
        self._velocity = np.concatenate([self._velocity, np.zeros((n, 2), np.float32)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        return new


def _row_median(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median over axis 1 of (M, J, 2) ``values`` whose first ``count`` (M,) per row are
    numbers once sorted (NaN sorts last): ``np.nanmedian`` without its slow masked path.
    Rows with no number give 0."""
    ordered = np.sort(values, axis=1)
    lo = np.maximum(count - 1, 0) // 2
    hi = np.maximum(count, 1) // 2
    rows = np.arange(len(values))
    median = (ordered[rows, lo] + ordered[rows, hi]) / 2
    return np.where((count > 0)[:, None], median, 0.0)
