"""One-Euro filtering of keypoints per track (Casiez, Roussel and Vogel, CHI 2012): a low-pass
filter whose cutoff rises with speed, so a still person stops jittering and a moving one is
followed with little lag.

For each coordinate, with ``dt`` the seconds since the track's joint was last filtered:

    dx      = (x - x_prev) / dt,   dx_hat = a(d_cutoff) dx + (1 - a(d_cutoff)) dx_hat_prev
    cutoff  = min_cutoff + beta |dx_hat|
    x_hat   = a(cutoff) x + (1 - a(cutoff)) x_hat_prev,   a(f) = 1 / (1 + 1 / (2 pi f dt))

Speeds are in pixels per second of the original image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """The filter's parameters.

    min_cutoff
        Hz; lower: a still joint jitters less, and lags more when it starts to move.
    beta
        Hz per pixel/s of speed; higher: a fast joint lags less (and keeps more jitter).
    d_cutoff
        Hz; the cutoff of the speed estimate itself.
    """

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self):
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not (value >= 0 if name == "beta" else value > 0) or not math.isfinite(value):
                raise ValueError(f"One-Euro {name} must be {'>= 0' if name == 'beta' else '> 0'}, "
                                 f"got {value}")


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * cutoff * dt))


class KeypointSmoother:
    """One-Euro filters for each joint of each track, fed one frame at a time in frame order.

    Parameters
    ----------
    fps : float
        Frames per second of the source (``dt`` is frames elapsed / fps).
    config : OneEuroConfig, optional
    forget_after : int
        Frames after which a track's filters are dropped (a track that ended).
    """

    def __init__(self, fps: float, config: OneEuroConfig | None = None, forget_after: int = 300):
        if not fps > 0:
            raise ValueError(f"frames per second must be > 0, got {fps}")
        self.fps = float(fps)
        self.config = config or OneEuroConfig()
        self.forget_after = forget_after
        self.frame = -1
        self._rows: dict[int, int] = {}  # track id -> row of the state arrays
        self._x, self._dx = np.zeros((0, 0, 2)), np.zeros((0, 0, 2))  # (rows, J, 2) position, speed
        self._seen = np.zeros((0, 0), np.int64)  # (rows, J) frame last filtered, -1: never

    def __call__(self, ids: np.ndarray, keypoints: np.ndarray,
                 joint_threshold: float = 0.0) -> np.ndarray:
        """Filtered copy of ``keypoints`` (P, J, 3); people without a track (id < 0) and joints
        scoring ``joint_threshold`` or less pass through unchanged (and do not feed the filter)."""
        self.frame += 1
        out = np.array(keypoints, np.float32, copy=True)
        ids = np.asarray(ids).tolist()
        people = [p for p, t in enumerate(ids) if t >= 0]
        if self._seen.shape[1] != out.shape[1]:
            self._reset(out.shape[1])
        rows = np.array([self._row(ids[p]) for p in people], np.int64)
        if len(rows):
            self._filter(out, np.array(people), rows, joint_threshold)
        if self.frame % 64 == 0:
            self._forget()
        return out

    def _filter(self, out: np.ndarray, people: np.ndarray, rows: np.ndarray,
                joint_threshold: float) -> None:
        cfg = self.config
        xy = out[people, :, :2].astype(np.float64)  # (M, J, 2)
        seen = out[people, :, 2] > joint_threshold  # (M, J)
        last = self._seen[rows]
        fresh = seen & (last < 0)  # a joint this track shows for the first time: taken as it is
        go = seen & (last >= 0)
        x_prev, dx_prev = self._x[rows], self._dx[rows]
        dt = (np.maximum(self.frame - last, 1) / self.fps)[:, :, None]
        dx = (xy - x_prev) / dt
        dx_hat = dx_prev + _alpha(cfg.d_cutoff, dt) * (dx - dx_prev)
        x_hat = x_prev + _alpha(cfg.min_cutoff + cfg.beta * np.abs(dx_hat), dt) * (xy - x_prev)
        g, f = go[:, :, None], fresh[:, :, None]
        self._x[rows] = np.where(g, x_hat, np.where(f, xy, x_prev))
        self._dx[rows] = np.where(g, dx_hat, dx_prev)
        self._seen[rows] = np.where(seen, self.frame, last)
        out[people, :, :2] = np.where(g, x_hat, xy)

    def _row(self, track: int) -> int:
        row = self._rows.get(track)
        if row is None:
            row = self._rows[track] = len(self._rows)
            if row >= len(self._seen):  # grow the state arrays by doubling
                extra = max(16, len(self._seen))
                j = self._seen.shape[1]
                self._x = np.concatenate([self._x, np.zeros((extra, j, 2))])
                self._dx = np.concatenate([self._dx, np.zeros((extra, j, 2))])
                self._seen = np.concatenate([self._seen, np.full((extra, j), -1, np.int64)])
        return row

    def _reset(self, joints: int) -> None:
        self._rows = {}
        self._x, self._dx = np.zeros((0, joints, 2)), np.zeros((0, joints, 2))
        self._seen = np.zeros((0, joints), np.int64)

    def _forget(self) -> None:
        """Drop the filters of tracks not seen for ``forget_after`` frames (compacting rows)."""
        keep = {t: r for t, r in self._rows.items()
                if self.frame - self._seen[r].max() <= self.forget_after}
        if len(keep) == len(self._rows):
            return
        order = list(keep.values())
        self._x, self._dx, self._seen = self._x[order], self._dx[order], self._seen[order]
        self._rows = {t: i for i, t in enumerate(keep)}
