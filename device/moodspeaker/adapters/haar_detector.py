"""FaceDetector on OpenCV's Haar cascade (the frontal-face XML shipped in the package's data/), on the grayscale frame.

Coarse to fine. The coarse pass looks for faces of FINE_BELOW_PX and more on a copy shrunk until the
smallest is SCAN_MIN_FACE_PX, so a larger frame costs little more. Only when it finds nothing does the fine
pass look for the small faces of a listener on the sofa (down to the cascade's 24 px window, about 4.5 m
at 640x480), on a copy enlarged by FINE_UPSCALE (bit-exact linear, so ARM and x86 agree): the cascade
misses many faces near its window size and finds them once enlarged. With tracking on, the detector first
searches a margin around the last face at nearby scales (a fraction of a full scan's cost) and scans the
whole frame on a miss and every `full_every` frames, so a second, larger face entering the scene is found
within that many frames (that scan's coarse pass looks only for faces as large as the tracked one, as only such a face
would count; when it finds none, the tracked face, found where it was, ends the scan); while nobody is in view the
fine pass runs only every `fine_every` frames, and IDLE_SLOWDOWN times less often once nobody has been in view for
IDLE_AFTER frames (an empty room's cost, most of the day).

A box that hangs below a face found in the last `full_every` frames, much larger than it and holding it in its
upper half, is that face with the chin and neck under it (the cascade's answer to a lamp-lit face, every few
frames): it is dropped; a frame with nothing else in it has no face.

The fine pass also finds parts of a larger face: an eye, a mouth, the nose and mouth together, at 26-34 px inside
a 72 px face the coarse pass missed, and the tracker then follows that part for seconds. The coarse pass keeps
what it nearly found (an area a few of the cascade's windows accepted, fewer than `min_neighbors` + 1): a small
box whose centre lies inside such a near-face or a face of at least INNER_RATIO times its side, found in this
frame or the last `fine_every`, or inside a face returned in the last PART_MEMORY_FRAMES (the tracker followed it
until it lost it, or the listener's face a moment before), at most PART_RATIO_MAX times its side and off its centre
(PART_OFF_CENTRE), is a part of that face and is dropped. With tracking
off (`eval --fullframe`: frames that say nothing of each other) both look at the frame alone.

A head on the sofa leans: the frontal cascade was trained on upright faces and misses many that lean (crying, a head
resting on a hand, looking down sideways; the tests' val face leaning 15 degrees is never boxed upright). When the
upright passes find nobody, the search also scans the frame turned by 12.7 degrees (sin 9/41: the turn is integer
arithmetic and the nearest pixel, so ARM and x86 turn the same pixels), one way then the other on every TURN_EVERY-th
search (both, every time, with tracking off): the coarse pass, then, if it runs, the fine pass, each after its upright
scan; the tracker follows a face found that way at its turn, and if it loses it, the next search turns that way. Its
box is the upright square around the turned one; the model reads tilted faces (it was trained on FER2013's). The
tracker looks for a face smaller than FINE_BELOW_PX on its margin enlarged by FINE_UPSCALE, as the fine pass found it:
at the frame's own size it lost the tests' leaning 36 px face again within frames.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.config import DetectorConfig
from moodspeaker.core.domain import Box
from moodspeaker.errors import FrameError, SetupError, library_reason

CASCADE_NAME = "haarcascade_frontalface_default.xml"
SCAN_MIN_FACE_PX = 48  # the smallest face wanted is scanned at this size (the cascade window is 24 px). At 36 it
# held recall in full light but lost lamp-lit faces, whose few grey levels the shrink averages away: val faces of
# 60 px at 640x480, ×0.3 light, σ6 noise: 35 of 60 found at 36, 43 at 48; sofa clips (seeds 17, 18) lamp-lit 72 px:
# faces reached 7 and 10 at 36, 8 and 12 at 48 (full light 9 and 14, then 11 and 15). Detection on the demo clip at
# 640x480: 5.9 ms a frame at 36, 7.7 at 48 (the peer's: 18.5). Tracking at 36 and full scans at 48 took 6.5 ms
# but reached 7 and 11 lamp-lit faces
CASCADE_WINDOW_PX = 24  # the cascade's own window: no smaller face can be found
FINE_BELOW_PX = 48  # faces smaller than this (in the frame) are left to the fine pass
FINE_UPSCALE = 2.0  # the fine pass enlarges the frame this much: 24 px faces are scanned at 48 (1.5 found 34 and 36
# of 60 val faces of 30 px at 640x480 and 320x240, 2 finds 43 and 42, and still nothing in the same empty rooms)
TURN_SIN, TURN_COS, TURN_HYP = 9, 40, 41  # the search's turn of the frame: sin 9/41, 12.7 degrees. Sofa clips seeds
# 17-20 (scripts/make_sofa_clips.py), 64 faces each: faces the cascade alone boxes in a quarter of their frames or more,
# upright -> upright or turned 12 degrees either way: full light 72 px 50 -> 54, lamp-lit 72 px 45 -> 48 (24 degrees:
# 1 more face), with no box on no face. Through the pipeline: frames with the face boxed full light 2065 -> 2129, lamp-lit
# 1827 -> 1879, boxes on no face 7 -> 2 and 5 -> 4; faces reached (51 and 41) and wrong moods unchanged: the frames
# added went to faces already reached, or to a face still found too seldom to hold a mood (seed 17's lamp-lit sad face,
# 2 -> 23 of 40 frames). Whole 640x480 frames (`moodspeaker-train living-room`, 600 val faces in synthetic rooms,
# tracking off: both turns): 120 px faces found 78% -> 86%, moods right 0.510 -> 0.565; 72 px 75% -> 85%, 0.472 -> 0.525;
# still no face in empty rooms. The fine pass is turned too (turned, then enlarged: 18 ms at 640x480 here, 0.7 ms a
# frame on the demo clip), small faces are tracked enlarged and a scheduled scan keeps its tracked face: sofa clips
# seeds 17-20, full light 36 px faces reached 44 -> 47 of 64 (frames with the face boxed 1744 -> 1837), lamp-lit 48 px
# 39 -> 41 (1760 -> 1885), 72 px clips unchanged; wrong moods 13 -> 12; boxes on no face 7 -> 15 of about 7,700
# (26-33 px parts of faces the coarse pass lost, one frame of them counted; 13 once the scheduled scan looked only for
# faces as large as the tracked one, with reached 180 and wrong moods 13, the crops read differently). Whole frames:
# 36 px faces found 71% -> 78%, moods right 0.433 -> 0.477; 30 px 65% -> 73%; still no face in empty rooms
TURN_EVERY = 2  # every this many searches turn the frame: a turn costs what the upright passes cost (10 ms at 640x480
# here, and 18 ms when the fine pass runs); on the demo clip 0.35 + 0.7 ms a frame on average
IDLE_AFTER = 100  # frames in a row without a face (20 s at 5 fps): the room is empty, and ...
IDLE_SLOWDOWN = 4  # ... the searches for small and leaning faces run this many times less often. They are most of an
# empty room's cost: on the sofa clips' empty room at 640x480 here the upright coarse pass takes 8.8 ms, the turned one
# 12.8, the fine pass (the frame enlarged 2x) 19.7 and the turned fine pass 23.2, so an empty sofa cost 19.0-21.2 ms a
# frame; once idle, 10.5-11.9 (the peer's detector: 7.6-9.1, its one pass), three runs. A listener who sits down far
# away or leaning is then found up to 12 frames later (2.4 s at 5 fps); one near and upright at once, by the coarse
# pass. Sofa clips seeds 17-22: faces reached, wrong moods and boxes on no face unchanged (at 50 frames, 5 s of those
# 10 fps clips, a 36 px face the fine pass found only after 4 s of search was lost: reached 265 -> 264)
TRACK_SCALE_RANGE = 1.3  # the tracked search looks for faces between 1/1.3 and 1.3 times the last one: fusion
# (core/fusion.py, max_scale) takes a box that much larger or smaller for another face anyway. At 1.5, on the demo clip
# at 640x480 a tracked search took 4.1 ms, at 1.3 2.9 ms (detection 9.0 -> 8.0 ms a frame); sofa clips seeds 17-20,
# faces reached 175 -> 176 of 256, wrong moods 14 -> 13
NEAR_NEIGHBORS = 1  # a coarse area at least this many + 1 windows accepted is a near-face: evidence of a larger face
INNER_RATIO = 2.0  # a fine-pass box inside a near-face at least this many times its side is part of it (an eye or a
# mouth is under half a face's side). At 1.5 it also dropped real 36 px faces inside near-faces of 51-57 px (a face
# and its surroundings) and delayed a first mood on the sofa clips; the mouths dropped lay in near-faces of 75-87 px.
# Sofa clips (scripts/make_sofa_clips.py, 640x480), boxes on no face: seed 17 full light 72 px 8 -> 7, lamp-lit 20 -> 17;
# seed 19 32 -> 1 and 6 -> 1; seeds 18 and 20 none before or after; faces reached and wrong moods unchanged (seeds 17-20).
# A face the tracker followed and lost leaves no near-face when the coarse pass then misses it outright: a box inside
# a face returned in the last PART_MEMORY_FRAMES is a part too (PART_RATIO_MAX)
PART_RATIO_MAX = 3.5  # ... if that face is at most this many times its side. The parts the fine pass found inside a
# face just returned were 26-28 px in 72-84 px faces (up to 3.2 times); a 124 px box a scheduled scan returned around a
# 34 px face (the face and the sofa around it) is 3.6 times it, and the face found again inside it is no part (without
# the bound it was dropped for 2 s, and the 36 px clip of seed 21 reached one face fewer). Sofa clips seeds 17-22
# (scripts/make_sofa_clips.py), boxes on no face 18 -> 9 of about 11,470 (seed 19 full light 72 px 7 -> 0, a 26 px mouth
# tracked for the clip's last 0.7 s), the one of them counted -> none; faces reached and wrong moods unchanged
PART_MEMORY_FRAMES = 50  # frames (5 s at 10 fps) a returned face is remembered for PART_RATIO_MAX. At `full_every`
# (10) the eyes and mouths of faces the coarse pass missed outright 1.5-2 s after the face before them left (the sofa's
# 1 s gaps) passed: sofa clips seeds 23-25, boxes on no face 17 of 5,796, 5 of them counted (an eye tracked for 3
# frames, twice, in full light)
PART_OFF_CENTRE = 0.1  # ... and only a box this many of the face's sides off its centre (across or down) is a part of
# it: the eyes and mouths above lay 0.14-0.44 off, a 28 px face inside the 53 px box the cascade had drawn around the
# 36 px face before it (the face with the sofa around it) 0.03, and was dropped for its whole 4 s with the longer memory
SLID_RATIO = 1.4  # a box this many times a face of the last `full_every` frames, hanging below it, is not a face.
# Lamp-lit, the cascade also boxes a face with its chin and neck (85-101 px, centre 30 px low, for a face it boxes at
# 51-59 px), frame by frame in turn with the face itself. Sofa clips seed 17, boxes on no face: lamp-lit 72 px 17 -> 4
# (7 -> 0 of them counted), full light 7 -> 6; seeds 18-20 unchanged. The face then framed right in more frames, its
# mood is the model's: on seed 17 the lamp-lit neutral face is read as angry (72 px) and sad (48 px): wrong moods 1 -> 2
# in both lamp-lit clips, lamp-lit 48 px reached 8 -> 9


class DetectorError(SetupError):
    """The cascade file is missing or unreadable; the message says where it was looked for."""


def default_cascade() -> Path:
    """The cascade is part of the program, not of a model version: package data, found from this file."""
    return Path(__file__).resolve().parents[1] / "data" / CASCADE_NAME


class HaarFaceDetector:
    def __init__(self, config: DetectorConfig | None = None, cascade: Path | None = None) -> None:
        """`config`: the [detector] section (validated there); `cascade`: the XML, default the package's."""
        self.config = config or DetectorConfig()
        self.cascade_path = Path(cascade) if cascade else default_cascade()
        if not self.cascade_path.is_file():
            raise DetectorError(f"{self.cascade_path}: Haar cascade not found; it ships with the moodspeaker package "
                                f"(moodspeaker/data/{CASCADE_NAME}): reinstall moodspeaker")
        try:
            self._cascade = cv2.CascadeClassifier(str(self.cascade_path))
        except (cv2.error, SystemError):  # OpenCV raises on some malformed files, returns an empty one on others
            self._cascade = cv2.CascadeClassifier()
        if self._cascade.empty():
            raise DetectorError(f"{self.cascade_path}: not a readable Haar cascade XML")
        self._last: Box | None = None
        self._turn = 0  # the way the last face was found: upright (0), on the frame turned one way (1) or the other (-1)
        self._lost_turn = 0  # the turn of a tracked face just lost: the next search looks for it there first
        self._searches = 0  # searches for faces missed upright (every TURN_EVERY-th turns the frame, each way in turn)
        self._since_full = 0
        self._since_fine = 0
        self._empty = 0  # frames in a row without a face (IDLE_AFTER)
        self._frame = 0
        self._near: list[tuple[Box, int]] = []  # near-faces of the coarse pass, with the frame they were seen in
        self._recent: list[tuple[Box, int]] = []  # the faces returned in the last PART_MEMORY_FRAMES (or `full_every`)

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a grayscale frame, largest first."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"expected a 2-D uint8 grayscale frame, got {gray.dtype} {gray.shape}")
        cfg = self.config
        self._frame += 1
        if not cfg.track:  # frames are unrelated (eval --fullframe): nothing seen before says anything about this one
            self._near, self._recent = [], []
        memory = max(cfg.full_every, PART_MEMORY_FRAMES)
        self._recent = [(b, f) for b, f in self._recent if self._frame - f <= memory]
        scheduled = self._since_full >= cfg.full_every
        if cfg.track and self._last is not None and not scheduled:
            self._since_full += 1
            faces = self._plausible(self._around(gray, self._last, self._turn))
            if faces:
                self._last, self._empty = faces[0], 0
                return faces
        self._since_full = 0
        faces, turn = self._full(gray, self._last if scheduled and cfg.track else None)
        faces = self._plausible(faces)
        if not faces and self._turn:
            self._lost_turn = self._turn
        self._last, self._turn = (faces[0], turn) if faces else (None, 0)
        self._empty = 0 if faces else self._empty + 1
        return faces

    def _plausible(self, faces: list[Box]) -> list[Box]:
        """`faces` less the boxes that hang below a face found in the last `full_every` frames (_slid), noted."""
        faces = [b for b in faces
                 if not any(_slid(b, face) for face, f in self._recent if self._frame - f <= self.config.full_every)]
        self._recent += [(b, self._frame) for b in faces]
        return faces

    def _full(self, gray: np.ndarray, tracked: Box | None = None) -> tuple[list[Box], int]:
        """The faces and the turn they were found at. The upright coarse pass for faces of FINE_BELOW_PX and up (as
        large as the `tracked` face, on a scheduled scan); only if it finds none (the largest face is the one that
        counts): the `tracked` face if it is still where it was, else, while tracking finds nobody, every `fine_every`
        frames: the coarse pass on the frame turned (`_turns`), then the fine pass for smaller faces, upright and
        turned."""
        cfg = self.config
        short = min(gray.shape)
        lo, hi = max(round(short * cfg.min_size), CASCADE_WINDOW_PX), round(short * cfg.max_size)
        coarse_lo = max(lo, FINE_BELOW_PX)
        if tracked is not None:  # a face smaller than the tracked one would not count: not looked for
            coarse_lo = max(coarse_lo, round(max(tracked.w, tracked.h) / TRACK_SCALE_RANGE))
        faces, near = self._scan(gray, coarse_lo, hi) if hi >= coarse_lo else ([], [])
        self._near = [(b, f) for b, f in self._near if self._frame - f <= cfg.fine_every]
        self._near += [(b, self._frame) for b in faces + near]
        if faces:
            self._since_fine = 0
            return faces, 0
        if tracked is not None:  # a scheduled scan found no larger face: the tracked one still there ends the search
            faces = self._around(gray, tracked, self._turn)
            if faces:
                return faces, self._turn
        self._since_fine += 1
        fine_every = cfg.fine_every * (IDLE_SLOWDOWN if self._empty >= IDLE_AFTER else 1)
        if cfg.track and self._last is None and self._since_fine < fine_every:
            return faces, 0
        self._since_fine = 0
        turns = self._turns()
        if hi >= FINE_BELOW_PX:
            for turn in turns:
                turned, _ = self._scan(gray, max(lo, FINE_BELOW_PX), hi, turn=turn)
                if turned:
                    return turned, turn
        if lo >= FINE_BELOW_PX:
            return [], 0
        for turn in (0, *turns):
            small, _ = self._scan(gray, lo, min(FINE_BELOW_PX, hi), FINE_UPSCALE, turn=turn)
            small = [b for b in small if not any(_part_of(b, face) for face, _ in self._near)
                     and not any(_part_of(b, face, PART_RATIO_MAX, PART_OFF_CENTRE) for face, _ in self._recent)]
            if small:
                return small, turn
        return [], 0

    def _turns(self) -> tuple[int, ...]:
        """The ways this search turns the frame: every TURN_EVERY-th search one way, the next time the other;
        both, every time, with tracking off; the first search after a face tracked at a turn was lost, that turn
        (sofa clips seeds 17-20: one more 36 px face reached, seed 17's neutral; nothing else changed)."""
        if not self.config.track:
            return 1, -1
        self._searches += 1
        if self._lost_turn:
            lost, self._lost_turn = self._lost_turn, 0
            return (lost,)
        if self._searches % TURN_EVERY:
            return ()
        return ((-1) ** (self._searches // TURN_EVERY),)

    def _around(self, gray: np.ndarray, last: Box, turn: int) -> list[Box]:
        pad_x, pad_y = round(last.w * self.config.track_margin), round(last.h * self.config.track_margin)
        x0, y0 = max(last.x - pad_x, 0), max(last.y - pad_y, 0)
        x1, y1 = min(last.x + last.w + pad_x, gray.shape[1]), min(last.y + last.h + pad_y, gray.shape[0])
        side = max(last.w, last.h)
        lo = max(round(side / TRACK_SCALE_RANGE), CASCADE_WINDOW_PX)
        scale = FINE_UPSCALE if side < FINE_BELOW_PX else None  # a small face is looked for enlarged, as the fine pass does
        faces, _ = self._scan(gray[y0:y1, x0:x1], lo, max(round(side * TRACK_SCALE_RANGE), lo), scale, turn)
        return [Box(b.x + x0, b.y + y0, b.w, b.h) for b in faces]

    def _scan(self, gray: np.ndarray, min_side: int, max_side: int, scale: float | None = None,
              turn: int = 0) -> tuple[list[Box], list[Box]]:
        """Faces between min_side and max_side px, found on a copy resized by `scale`: by default so that the
        smallest is scanned at SCAN_MIN_FACE_PX (never enlarged), so the cost depends on the face sizes wanted,
        not on the frame's resolution. Shrunk by area averaging or enlarged bit-exact linear, and turned one way (`turn`
        1) or the other (-1) if asked, at the smaller of the two sizes; the boxes are then the upright ones around the
        turned boxes' centres. Also the near-faces: areas that more than NEAR_NEIGHBORS but at most `min_neighbors` of
        the cascade's windows accepted."""
        if scale is None:
            scale = min(1.0, SCAN_MIN_FACE_PX / max(min_side, 1))
        lo, hi = max(round(min_side * scale), 1), max(round(max_side * scale), 1)
        try:
            if scale < 1.0:
                gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            turned_shape = gray.shape  # turned at the smaller of the two sizes: the enlarged copy has scale² the pixels
            if turn:
                gray = np.take(gray, _turned_pixels(*turned_shape, turn)).reshape(turned_shape)
            if scale > 1.0:
                gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR_EXACT)
            found, hits = self._cascade.detectMultiScale2(
                gray, scaleFactor=self.config.scale_factor, minNeighbors=min(NEAR_NEIGHBORS, self.config.min_neighbors),
                minSize=(lo, lo), maxSize=(hi, hi))
        except cv2.error as exc:
            raise FrameError(f"face detector: OpenCV failed on a {gray.shape} frame ({library_reason(exc)})") from None
        faces: list[Box] = []
        near: list[Box] = []
        for (x, y, w, h), n in zip(found, hits, strict=True):
            if turn:  # the upright box around the turned one's centre
                enlarged = max(scale, 1.0)
                cx, cy = _unturned((x + (w - 1) / 2) / enlarged, (y + (h - 1) / 2) / enlarged, *turned_shape, turn)
                x, y = cx * enlarged - (w - 1) / 2, cy * enlarged - (h - 1) / 2
            (faces if n > self.config.min_neighbors else near).append(Box(*(round(v / scale) for v in (x, y, w, h))))
        return sorted(faces, key=lambda b: b.area, reverse=True), near


@functools.lru_cache(maxsize=16)
def _turned_pixels(height: int, width: int, turn: int) -> np.ndarray:
    """For each pixel of an image of this size turned `turn` ways about its centre, the flat index of the pixel it
    shows (the nearest; edges repeated). Integer arithmetic on twice the offsets from the centre: exact everywhere."""
    y2 = (2 * np.arange(height, dtype=np.int32) - (height - 1))[:, None]
    x2 = (2 * np.arange(width, dtype=np.int32) - (width - 1))[None, :]
    x = TURN_COS * x2 - turn * TURN_SIN * y2 + TURN_HYP * width  # in place from here: two frame-sized arrays at most
    x //= 2 * TURN_HYP  # floor(x' + 1/2): the nearest pixel
    np.clip(x, 0, width - 1, out=x)
    y = turn * TURN_SIN * x2 + TURN_COS * y2 + TURN_HYP * height
    y //= 2 * TURN_HYP
    np.clip(y, 0, height - 1, out=y)
    y *= width
    y += x
    return y.ravel()


def _unturned(x: float, y: float, height: int, width: int, turn: int) -> tuple[float, float]:
    """Where the point (x, y) of the turned image lies in the image (the same map as `_turned_pixels`)."""
    x2, y2 = 2 * x - (width - 1), 2 * y - (height - 1)
    return (((TURN_COS * x2 - turn * TURN_SIN * y2) / TURN_HYP + width - 1) / 2,
            ((turn * TURN_SIN * x2 + TURN_COS * y2) / TURN_HYP + height - 1) / 2)


def _slid(box: Box, face: Box) -> bool:
    """`box` is at least SLID_RATIO times `face`'s side, holds `face`'s centre in its upper half and has its own
    centre below `face`: the face and the chin, neck and chest under it."""
    cx2, cy2 = 2 * face.x + face.w, 2 * face.y + face.h
    return (max(box.w, box.h) >= SLID_RATIO * max(face.w, face.h)
            and 2 * box.x <= cx2 <= 2 * (box.x + box.w) and 2 * box.y <= cy2 <= 2 * box.y + box.h
            and 2 * box.y + box.h > 2 * (face.y + face.h))


def _part_of(small: Box, face: Box, most: float = math.inf, off_centre: float = 0.0) -> bool:
    """`small`'s centre lies inside `face`, which is at least INNER_RATIO times its side (and at most `most`), and at
    least `off_centre` times the face's side from its centre, across or down: an eye, a mouth."""
    cx2, cy2 = 2 * small.x + small.w, 2 * small.y + small.h
    side = max(face.w, face.h)
    return (most * max(small.w, small.h) >= side >= INNER_RATIO * max(small.w, small.h)
            and 2 * face.x <= cx2 <= 2 * (face.x + face.w) and 2 * face.y <= cy2 <= 2 * (face.y + face.h)
            and max(abs(cx2 - 2 * face.x - face.w), abs(cy2 - 2 * face.y - face.h)) >= 2 * off_centre * side)
