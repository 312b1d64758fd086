"""Time: the crops of one tracked face, aligned and averaged, so a dark room's sensor noise averages away.

A listener on the sofa holds still for seconds while the camera sees them several times a second, each frame
with fresh sensor noise. Averaging n aligned crops divides that noise by about sqrt(n) while the face stays
the same, so the model sees a crop closer to a well-lit one (pixel fusion). Each new crop, at the model's
input size, is registered on the running average by the integer shift (within `align_px`) that matches it
best, then joins the last `frames` crops. Fusion starts over when the face leaves (no face for `max_gap_s`),
jumps (its box lies more than `max_jump` of its side from the mean of the track's recent boxes, or differs from
that mean in size by more than `max_scale`: a single box of a face the detector sizes by a scan step or two
either way is not a jump), or
changes (the aligned crop differs from the average by far more than its noise explains: another person sat
down, or the same one turned away).

On val faces dimmed ×0.3 with fresh σ8 noise per frame (n=800, the shipped model with core.enhance): one
frame 0.546, four fused 0.626, eight fused 0.651 (clean: 0.69).

The alternative, averaging the model's outputs over the same frames weighted by each crop's quality (output
fusion), was measured against this on two seeded sets of sofa clips (scripts/make_sofa_clips.py, seeds 17
and 18, 16 faces each; faces reached, same gate, no confirmation): lamp-lit 72 px 8 and 11 with pixel fusion,
8 and 9 with output fusion, 8 and 8 per frame; lamp-lit 48 px 10 and 9, 9 and 7, 9 and 7; full light equal.
Averaging pixels lowers the noise the model and the quality gate see; averaging outputs only averages the
model's mistakes on noisy crops.
A face also counts only once its box has been tracked for `confirm_frames` frames in a row: a box that a detector
finds on a cushion for a frame or two is not a listener. The smoother downstream remains the one place that
decides the mood. Pure numpy, integer-exact averages.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from moodspeaker.core.crop_quality import noise_sigma
from moodspeaker.core.domain import Box


@dataclass(frozen=True)
class FusionParams:
    frames: int = 8  # at most this many recent crops are averaged (0.8 s at 10 fps, 1.6 s at 5 fps)
    confirm_frames: int = 3  # a face counts only once tracked this many frames in a row (a passing false face does not)
    max_gap_s: float = 0.6  # no face for longer than this: start over
    resume_s: float = 2.0  # ... but a box found again within this long where a confirmed face was counts at once.
    # A distant or dim face the detector finds only now and then (10-13 frames of 40) otherwise never counted long
    # enough to hold a mood: sofa clips seeds 17-20, faces reached +5 of 256 (seed 17 full light 11 -> 12, seed 18
    # 36 px 13 -> 14, seed 20 lamp-lit 72 px 10 -> 11, 36 px 11 -> 12, lamp-lit 48 px 8 -> 9), wrong moods +1 (seed 20 36 px)
    max_jump: float = 0.35  # the box centre lies over this fraction of its side from the track's mean box: start over
    max_scale: float = 1.3  # the box side is more than this ratio larger or smaller than the mean box's: start over
    align_px: int = 2  # register each crop on the average within +-align_px at the model's scale
    change_ratio: float = 3.0  # a mean absolute difference above this many noise sigmas (min 2 grey levels) ...
    change_contrast: float = 0.35  # ... and above this share of the crop's grey-level spread: the face changed

    def __post_init__(self) -> None:
        if self.frames < 1 or self.align_px < 0 or not 1 <= self.confirm_frames <= self.frames:
            raise ValueError("need frames >= 1, align_px >= 0 and 1 <= confirm_frames <= frames")
        if self.max_gap_s < 0 or self.resume_s < 0 or self.max_jump <= 0 or self.max_scale < 1 or self.change_ratio <= 0 \
                or self.change_contrast <= 0:
            raise ValueError("need max_gap_s and resume_s >= 0, max_jump > 0, max_scale >= 1, "
                             "change_ratio and change_contrast > 0")


@dataclass(frozen=True)
class Fused:
    crop: np.ndarray  # uint8, the model's input size: the average of the aligned crops
    frames: int  # how many crops it averages (1 right after a start-over)
    restarted: str | None  # why fusion started over at this crop ("new face", "jump", "changed"), else None
    confirmed: bool  # the face's box has been tracked for confirm_frames frames in a row: its crop may count


class CropFuser:
    """Per frame with a face: `track(t, box)` gives the box to cut the crop at (the mean of the track's recent
    boxes: a detector's box jitters in place and size by several pixels, the face on the sofa much less), then
    `add(crop)` with that crop at the model's input size returns the fused crop to classify. Per frame without
    a face: `miss(t)`."""

    def __init__(self, params: FusionParams | None = None) -> None:
        self.params = params or FusionParams()
        self._crops: deque[np.ndarray] = deque(maxlen=self.params.frames)  # aligned, int32
        self._sum: np.ndarray | None = None
        self._boxes: deque[Box] = deque(maxlen=self.params.frames)
        self._last_t: float | None = None
        self._why: str | None = None  # why the next crop starts fusion over
        self._held: tuple[Box, float] | None = None  # the last confirmed box and when it was seen
        self._resumed = False  # this track continues a confirmed face that the detector lost for a moment

    def reset(self) -> None:
        self._crops.clear()
        self._boxes.clear()
        self._sum, self._last_t = None, None

    def miss(self, t: float) -> None:
        """A frame with no face: after `max_gap_s` of them the next face starts afresh."""
        if self._last_t is not None and t - self._last_t > self.params.max_gap_s:
            self.reset()

    def track(self, t: float, box: Box) -> Box:
        """The box to crop this frame's face at: the mean of the track's boxes, this one included."""
        why = self._restart_reason(t, box)
        if why is not None:
            held = self._held
            self.reset()
            self._resumed = (why == "new face" and held is not None and t - held[1] <= self.params.resume_s
                             and not self._jumped(held[0], box))
        self._why = why
        self._boxes.append(box)
        self._last_t = t
        return self._mean_box()

    def add(self, crop: np.ndarray) -> Fused:
        """The crop cut at `track`'s box, at the model's input size, joins the fusion."""
        if crop.ndim != 2 or crop.dtype != np.uint8:
            raise ValueError(f"expected a 2-D uint8 crop, got {crop.dtype} {crop.shape}")
        why, self._why = self._why, None
        face = crop.astype(np.int32)
        if why is None and self._sum is not None and crop.shape != self._sum.shape:
            why = "new face"
        if why is None and self._sum is not None:
            face = self._aligned(face)
            if self._changed(face, crop):
                why, face = "changed", crop.astype(np.int32)
        if why is not None:
            self._crops.clear()
            self._sum = None
        if self._sum is None:
            self._sum = np.zeros_like(face)
        if len(self._crops) == self.params.frames:
            self._sum -= self._crops[0]
        self._crops.append(face)
        self._sum += face
        n = len(self._crops)
        fused = ((2 * self._sum + n) // (2 * n)).astype(np.uint8)  # rounded integer mean
        confirmed = self._confirmed()
        if confirmed and self._boxes and self._last_t is not None:
            self._held = (self._boxes[-1], self._last_t)
        return Fused(crop=fused, frames=n, restarted=why, confirmed=confirmed)

    def _confirmed(self) -> bool:
        """The box has stayed put for `confirm_frames` frames: a face is there. Confirmation follows the box, not
        the average: when the crop changes in place (the face turned; at 3 m a detector's box also jitters in size
        enough to look like a change), the average starts over but the face still counts, so the smoother's
        dwell is not broken by frames that cannot count (on the 36 px sofa clips, seeds 17 and 18, one face of
        16 in each lost its mood that way). A track that starts where a confirmed face was, within `resume_s`, is
        that face found again and counts at once."""
        return self._resumed or len(self._boxes) >= self.params.confirm_frames

    def _restart_reason(self, t: float, box: Box) -> str | None:
        p = self.params
        if not self._boxes or self._last_t is None or t - self._last_t > p.max_gap_s:
            return "new face"
        return "jump" if self._jumped(self._mean_box(), box) else None

    def _mean_box(self) -> Box:
        """The mean of the track's recent boxes: where the face is, steadier than any one detection."""
        n = len(self._boxes)
        x, y, w, h = (round(sum(getattr(b, k) for b in self._boxes) / n) for k in ("x", "y", "w", "h"))
        return Box(x, y, max(w, 1), max(h, 1))

    def _jumped(self, was: Box, box: Box) -> bool:
        """`box` is not where the face's box `was`: its centre lies more than `max_jump` of the side away, or its
        size differs by more than `max_scale`."""
        p = self.params
        side, was_side = max(box.w, box.h), max(was.w, was.h)
        moved = max(abs((2 * box.x + box.w) - (2 * was.x + was.w)), abs((2 * box.y + box.h) - (2 * was.y + was.h))) / 2
        return moved > p.max_jump * was_side or max(side / was_side, was_side / side) > p.max_scale

    def _mean(self) -> np.ndarray:
        assert self._sum is not None
        return self._sum / len(self._crops)

    def _aligned(self, face: np.ndarray) -> np.ndarray:
        """`face` shifted by the integer offset (edges replicated) whose overlap with the average differs least."""
        r = self.params.align_px
        if r == 0:
            return face
        mean = self._mean()
        inner = (slice(r, face.shape[0] - r), slice(r, face.shape[1] - r))
        padded = np.pad(face, r, mode="edge")
        best, best_cost = (0, 0), np.inf
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                shifted = padded[r + dy:r + dy + face.shape[0], r + dx:r + dx + face.shape[1]]
                cost = float(np.abs(shifted[inner] - mean[inner]).mean())
                if cost < best_cost - 1e-9:
                    best, best_cost = (dy, dx), cost
        dy, dx = best
        return padded[r + dy:r + dy + face.shape[0], r + dx:r + dx + face.shape[1]].copy()

    def _changed(self, face: np.ndarray, raw: np.ndarray) -> bool:
        """Far more different from the average than two noisy pictures of one face are: by more than
        `change_ratio` noise sigmas and more than `change_contrast` of the face's contrast (the residue of a
        detector box's jitter in size grows with the contrast)."""
        diff = float(np.abs(face - self._mean()).mean())
        # noise_sigma counts fine texture too, so this errs towards "the same face"
        p = self.params
        return diff > max(p.change_ratio * max(noise_sigma(raw), 2.0), p.change_contrast * float(raw.std()))
