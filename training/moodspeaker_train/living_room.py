"""The living-room benchmark: val faces as a speaker on a shelf sees them from the sofa, in evening light.

Builds perturbed sets from the validation split only (never train, never test), seeded so that a rerun
writes the same pixels, and runs each through the device's own `moodspeaker eval` (crops) or
`moodspeaker eval --fullframe` (whole frames through the detector), ours and the peer (`--peer`: fer's
model, and fer's detector on frames) side by side. Writes one table (markdown and JSON) and two plots
(accuracy against face size and against light) and a summary into the model card.

Crop sets: every val face, perturbed as a camera would degrade it (dim light with sensor noise, a dark
gamma, defocus, a distant face delivered at 24 px, a hand or mug over the lower third, a tilted head).
Frame sets: a seeded subset of val faces composited (moodspeaker_train.scenes, as the demo clip is) into
cluttered rooms at a given face height in pixels (the side of the pasted FER2013 crop, forehead to chin),
at 640x480 and 320x240, and once at 48 px in a dim, noisy frame.

`top_wrong_share` is the share of all faces in a set given to the single most common wrong class: the
number that says whether a dark room gets sad music.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from moodspeaker.core.emotions import EMOTIONS
from moodspeaker_train.data import FaceSet
from moodspeaker_train.scenes import Lighting, composite, room

Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]
DIM_GAIN = 0.3  # evening light: a third of the exposure the faces were photographed with


def dim(image: np.ndarray, rng: np.random.Generator, gain: float = DIM_GAIN, sigma: float = 0.0) -> np.ndarray:
    """Less light (pixel values times `gain`) and then read noise of `sigma` grey levels, as a dark sensor gives."""
    out = image.astype(np.float32) * gain
    if sigma:
        out += rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def gamma(image: np.ndarray, exponent: float) -> np.ndarray:
    """A dark tone curve: mid-tones pushed down (exponent > 1) while black and white stay put."""
    table = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** exponent), 0, 255).astype(np.uint8)
    return table[image]


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian defocus of `sigma` pixels (at the crop's own scale)."""
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """The crop a distant face yields: the same face, `side` pixels across (area-averaged, as the optics do)."""
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)


def occlude_lower_third(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand or a mug over mouth and chin: the lower third becomes a flat object of random grey with a little texture."""
    out = image.copy()
    height = image.shape[0]
    rows = slice(height - height // 3, height)
    level = rng.uniform(30, 220)
    patch = level + rng.normal(0, 3, out[rows].shape)
    out[rows] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    return out


def rotate(image: np.ndarray, rng: np.random.Generator, degrees: float = 20.0) -> np.ndarray:
    """A head tilted by `degrees`, to a random side, about the crop's centre (edges replicated)."""
    height, width = image.shape
    angle = degrees if rng.random() < 0.5 else -degrees
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# name -> (what it models, the perturbation); "clean" is val as it is.
CROP_SETS: dict[str, tuple[str, Perturb]] = {
    "clean": ("val crops as they are", lambda x, rng: x),
    "dim_noise4": ("dim ×0.3 + sensor noise σ4", lambda x, rng: dim(x, rng, sigma=4.0)),
    "dim_noise8": ("dim ×0.3 + sensor noise σ8", lambda x, rng: dim(x, rng, sigma=8.0)),
    "gamma2.5": ("dark tone curve, gamma 2.5", lambda x, rng: gamma(x, 2.5)),
    "blur1": ("defocus, Gaussian σ1", lambda x, rng: blur(x, 1.0)),
    "blur2": ("defocus or motion, Gaussian σ2", lambda x, rng: blur(x, 2.0)),
    "crop24": ("distant face: a 24×24 px crop", lambda x, rng: shrink(x, 24)),
    "occluded": ("lower third covered (hand, mug)", occlude_lower_third),
    "rotated20": ("head tilted ±20°", rotate),
}


@dataclass(frozen=True)
class FrameSetSpec:
    name: str
    width: int
    height: int
    face_px: int  # side of the pasted face crop
    dark: bool = False  # the whole frame dimmed ×0.3 with noise σ8 after composition

    @property
    def description(self) -> str:
        return f"{self.width}×{self.height}, face {self.face_px} px" + (", dim ×0.3 + noise σ8" if self.dark else "")


FRAME_SETS: tuple[FrameSetSpec, ...] = (
    *(FrameSetSpec(f"frame640_face{px}", 640, 480, px) for px in (120, 72, 48, 36, 30)),
    *(FrameSetSpec(f"frame320_face{px}", 320, 240, px) for px in (120, 72, 48, 36, 30, 24)),
    FrameSetSpec("frame640_face48_dark", 640, 480, 48, dark=True),
)


def crop_set(name: str, images: np.ndarray, seed: int) -> np.ndarray:
    """The crop set `name` built from `images` (N, 48, 48); same seed, same pixels.

    Sets differ in size (crop24), so the result is an (N, H, W) array of that set's crop size."""
    _, perturb = CROP_SETS[name]
    rng = np.random.default_rng([seed, list(CROP_SETS).index(name)])
    return np.stack([perturb(face, rng) for face in images])


def frame_set(spec: FrameSetSpec, faces: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each face composited into its own room at spec's size: frames (N, H, W) uint8 and boxes (N, 3) x, y, side.

    Frame i's room, lighting and position come from (seed, i) alone, so the same face sits in the same kind of
    room at every face size and the sets can be compared face by face."""
    frames = np.empty((len(faces), spec.height, spec.width), np.uint8)
    boxes = np.empty((len(faces), 3), np.int32)
    side = spec.face_px
    for i, face in enumerate(faces):
        rng = np.random.default_rng([seed, spec.width, i])
        background, lighting = room(rng, spec.width, spec.height), Lighting.random(rng)
        x = int(rng.uniform(0.1, 0.9) * (spec.width - side))
        y = int(rng.uniform(0.2, 0.7) * (spec.height - side))
        frame = composite(face, background, lighting, rng, x, y, side)
        frames[i] = dim(frame, rng, sigma=8.0) if spec.dark else frame
        boxes[i] = (x, y, side)
    return frames, boxes


def top_wrong(confusion: list[list[int]]) -> tuple[str, float]:
    """The wrong class given to the most faces and its share of all faces (a missed face is not a class)."""
    conf = np.asarray(confusion, dtype=np.int64)[:, :len(EMOTIONS)]
    wrong = conf.sum(axis=0) - np.diag(conf)
    worst = int(np.argmax(wrong))
    total = int(np.asarray(confusion).sum())
    return EMOTIONS[worst], round(float(wrong[worst]) / max(total, 1), 4)


def false_faces(seed: int, rooms: int = 300) -> dict:
    """Frames where a face is found though nobody is there: empty synthetic rooms (no tracking, as `eval
    --fullframe` runs) and the demo clip's face-free stretches (the device's tracking detector, frame by frame),
    ours and the peer, at both frame sizes."""
    from moodspeaker.adapters.haar_detector import HaarFaceDetector, default_cascade
    from moodspeaker.adapters.opencv_source import OpenCVFrameSource
    from moodspeaker.config import DetectorConfig
    from moodspeaker.core.mood import NO_FACE
    from moodspeaker.dev.demo_clip import DEFAULT_TRUTH, load_clip_truth
    from moodspeaker.dev.peer import PeerDetector

    truth = load_clip_truth(DEFAULT_TRUTH)
    out = {}
    for width, height in ((640, 480), (320, 240)):
        rng = np.random.default_rng([seed, width, 7])
        empty = [composite(None, room(rng, width, height), Lighting.random(rng), rng) for _ in range(rooms)]
        ours, peer = HaarFaceDetector(DetectorConfig(track=False)), PeerDetector(default_cascade())
        tracking, clip_frames, clip_false = HaarFaceDetector(), 0, 0
        source = OpenCVFrameSource(truth.video, size=(width, height))
        try:
            for frame in source.frames():
                found = bool(tracking.detect(frame.gray))
                if truth.mood_at(frame.t) == NO_FACE:
                    clip_frames += 1
                    clip_false += found
        finally:
            source.close()
        out[f"{width}x{height}"] = {
            "empty_rooms": rooms,
            "ours_false_frames": round(sum(bool(ours.detect(f)) for f in empty) / rooms, 4),
            "peer_false_frames": round(sum(bool(peer.detect(f)) for f in empty) / rooms, 4),
            "demo_clip_face_free_frames": clip_frames,
            "ours_demo_clip_false_frames": round(clip_false / max(clip_frames, 1), 4),
        }
    return out


SIM_FPS = 5.0  # the device's analysis rate
SIM_CLEAN_S, SIM_POOR_S = 10.0, 20.0  # a listener seen in good light, then the light drops (or the face blurs, ...)


def simulate_moods(probs_clean: np.ndarray, probs_poor: np.ndarray, weights_poor: np.ndarray, labels: np.ndarray,
                   model_labels: tuple[str, ...], *, listeners: int = 300, seed: int = 11, warm_start: bool = True) -> dict:
    """How often the smoothed mood is wrong while the crops are poor, with each crop's quality weight and without.

    Each simulated listener has one true emotion. Frames at SIM_FPS: SIM_CLEAN_S s of clean crops of that
    emotion (warm_start; otherwise none), then SIM_POOR_S s of perturbed crops of it, each frame a face of that
    class drawn at random from the set (probabilities precomputed). Over the poor stretch: the share of time
    the mood is a wrong emotion, the right one, or no mood yet; and the share of listeners whose mood changed
    to a wrong emotion there ("false flips")."""
    from moodspeaker.core.smoother import Smoother

    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    truth_names = [EMOTIONS[int(c)] for c in labels]
    out = {}
    for arm, use_weights in (("without_gate", False), ("with_gate", True)):
        arm_rng = np.random.default_rng(seed)  # both arms see the same listeners and the same frames
        wrong = right = none = flips = 0
        steps = 0
        for _ in range(listeners):
            cls = int(arm_rng.choice(labels))
            faces = by_class[cls]
            smoother, t = Smoother(model_labels), 0.0
            if warm_start:
                for i in arm_rng.choice(faces, round(SIM_CLEAN_S * SIM_FPS)):
                    smoother.update(t, probs_clean[i])
                    t += 1 / SIM_FPS
            before, flipped = smoother.mood, False
            for i in arm_rng.choice(faces, round(SIM_POOR_S * SIM_FPS)):
                smoother.update(t, probs_poor[i], weight=float(weights_poor[i]) if use_weights else 1.0)
                t += 1 / SIM_FPS
                mood = smoother.mood
                steps += 1
                if mood == truth_names[faces[0]]:
                    right += 1
                elif mood in EMOTIONS:
                    wrong += 1
                    flipped |= mood != before
                else:
                    none += 1
            flips += flipped
        out[arm] = {"wrong_mood_time": round(wrong / steps, 4), "right_mood_time": round(right / steps, 4),
                    "no_mood_time": round(none / steps, 4), "false_flips": round(flips / listeners, 4)}
    out["skipped_share"] = round(float(np.mean(weights_poor == 0)), 4)
    out["mean_weight"] = round(float(np.mean(weights_poor)), 4)
    return out


def mood_gate_study(val: FaceSet, model: Path, seed: int, sets: tuple[str, ...], log: Callable[[str], None] = print) -> dict:
    """`simulate_moods` on each crop set, warm (good light first) and cold (poor crops from the start)."""
    from moodspeaker.adapters.litert_classifier import LiteRTClassifier
    from moodspeaker.core.crop_quality import assess

    classifier = LiteRTClassifier(model)
    clean = np.stack([classifier.classify(face) for face in val.images])
    study = {}
    for name in sets:
        images = crop_set(name, val.images, seed)
        probs = clean if name == "clean" else np.stack([classifier.classify(face) for face in images])
        weights = np.array([assess(face).weight for face in images])
        study[name] = {start: simulate_moods(clean, probs, weights, val.labels, classifier.labels, seed=seed,
                                             warm_start=start == "warm") for start in ("warm", "cold")}
        w, c = study[name]["warm"], study[name]["cold"]
        log(f"mood gate {name:12s} skipped {w['skipped_share']:.2f}; wrong-mood time warm "
            f"{w['without_gate']['wrong_mood_time']:.2f} -> {w['with_gate']['wrong_mood_time']:.2f}, "
            f"cold {c['without_gate']['wrong_mood_time']:.2f} -> {c['with_gate']['wrong_mood_time']:.2f}")
    return study


def run_eval(data: Path, *, fullframe: bool, peer: bool, model: Path | None) -> dict:
    """One `moodspeaker eval --json` in its own process, exactly as the DESIGN.md contract runs it."""
    cmd = [sys.executable, "-m", "moodspeaker.cli", "eval", "--data", str(data), "--json"]
    if fullframe:
        cmd.append("--fullframe")
    if peer:
        cmd.append("--peer")
    elif model is not None:
        cmd += ["--model", str(model)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(result: dict, fullframe: bool) -> dict:
    wrong_class, wrong_share = top_wrong(result["confusion"])
    out = {"accuracy": round(result["accuracy"], 4), "macro_f1": round(result["macro_f1"], 4),
           "top_wrong_class": wrong_class, "top_wrong_share": wrong_share, "ms_per_face": result["ms_per_face"]}
    if fullframe:
        out["detected"] = round(result["detected"] / max(result["n"], 1), 4)
        out["ms_detect"] = result["ms_detect"]
        out["boxes"], out["boxes_on_no_face"] = result["boxes"], result["boxes_on_no_face"]
    return out


def benchmark(val: FaceSet, work: Path, *, model: Path | None = None, frames: int = 600, seed: int = 11,
              sets: tuple[str, ...] | None = None, keep: bool = False, log: Callable[[str], None] = print) -> dict:
    """Build each set into `work` (npz in the eval layout), evaluate ours and the peer on it, return the table.

    `frames`: how many val faces (a seeded subset, the same for every frame set) go into each frame set;
    `sets`: names to run (default all); `keep`: leave the npz files in `work` (frame sets are large)."""
    work.mkdir(parents=True, exist_ok=True)
    wanted = sets or (*CROP_SETS, *(s.name for s in FRAME_SETS))
    unknown = set(wanted) - set(CROP_SETS) - {s.name for s in FRAME_SETS}
    if unknown:
        raise ValueError(f"unknown living-room sets {sorted(unknown)}; known: {[*CROP_SETS, *(s.name for s in FRAME_SETS)]}")
    subset = np.sort(np.random.default_rng(seed).permutation(len(val))[:frames])
    rows = {}
    for name in wanted:
        spec = next((s for s in FRAME_SETS if s.name == name), None)
        t0 = time.monotonic()
        if spec is None:
            images, labels, what = crop_set(name, val.images, seed), val.labels, CROP_SETS[name][0]
            faces = None
        else:
            images, placed = frame_set(spec, val.images[subset], seed)
            labels, what = val.labels[subset], spec.description
            faces = np.column_stack((placed, placed[:, 2]))  # x, y, w, h: eval counts the boxes on no face
        path = work / f"{name}.npz"
        np.savez(path, images=images, labels=labels, **({} if faces is None else {"boxes": faces}))
        fullframe = spec is not None
        row = {"set": name, "what": what, "kind": "frames" if fullframe else "crops", "n": len(labels)}
        if spec is not None:
            row |= {"width": spec.width, "height": spec.height, "face_px": spec.face_px, "dark": spec.dark}
        for who in ("ours", "peer"):
            row[who] = _summary(run_eval(path, fullframe=fullframe, peer=who == "peer", model=model), fullframe)
        if not keep:
            path.unlink()
        rows[name] = row
        log(f"{name:22s} ours {row['ours']['accuracy']:.3f}  peer {row['peer']['accuracy']:.3f}"
            + (f"  found {row['ours']['detected']:.2f}/{row['peer']['detected']:.2f}" if fullframe else "")
            + f"  ({time.monotonic() - t0:.0f} s)")
    return {"seed": seed, "frames_per_frame_set": frames, "val_faces": len(val), "sets": rows,
            "measured": time.strftime("%Y-%m-%d")}


def markdown_gate_table(study: dict) -> str:
    """The quality gate's effect on the simulated mood (simulate_moods), per crop set."""
    lines = ["Quality gate, simulated listeners (300 per set; 5 fps; warm: 10 s of clean crops first, then 20 s of the "
             "set's crops; cold: the set's crops from the start). Share of the poor stretch spent in a wrong mood "
             "(and with no mood yet), and share of listeners whose mood flipped to a wrong one; without the gate → "
             "with it.", "",
             "| set | crops skipped | warm: wrong-mood time | warm: false flips | cold: wrong-mood time | cold: no mood |",
             "|---|---|---|---|---|---|"]
    for name, row in study.items():
        w, c = row["warm"], row["cold"]
        lines.append(f"| {name} | {100 * w['skipped_share']:.0f}% "
                     f"| {w['without_gate']['wrong_mood_time']:.2f} → {w['with_gate']['wrong_mood_time']:.2f} "
                     f"| {w['without_gate']['false_flips']:.2f} → {w['with_gate']['false_flips']:.2f} "
                     f"| {c['without_gate']['wrong_mood_time']:.2f} → {c['with_gate']['wrong_mood_time']:.2f} "
                     f"| {c['without_gate']['no_mood_time']:.2f} → {c['with_gate']['no_mood_time']:.2f} |")
    return "\n".join(lines) + "\n"


def markdown_false_faces(false: dict) -> str:
    lines = ["False faces: share of frames with a face found where there is none (empty synthetic rooms, no tracking; "
             "the demo clip's face-free stretches through the device's tracking detector).", "",
             "| frame | empty rooms | ours | peer | demo clip face-free frames | ours on the clip |", "|---|---|---|---|---|---|"]
    for size, row in false.items():
        lines.append(f"| {size} | {row['empty_rooms']} | {100 * row['ours_false_frames']:.1f}% "
                     f"| {100 * row['peer_false_frames']:.1f}% | {row['demo_clip_face_free_frames']} "
                     f"| {100 * row['ours_demo_clip_false_frames']:.1f}% |")
    return "\n".join(lines) + "\n"


def markdown_boxes_on_no_face(result: dict) -> str:
    """Every box each detector returned on the frame sets (single frames, no tracking), and those on no face."""
    rows = [r for r in result["sets"].values() if r["kind"] == "frames"]
    lines = ["Boxes on no face in the frame sets: every box the detector returned on these single frames (no "
             "tracking, as `eval --fullframe` runs), and those off the face or under half its side (an eye, a mouth).",
             "", "| set | ours: on no face / boxes | peer |", "|---|---|---|"]
    total = {"ours": [0, 0], "peer": [0, 0]}
    for row in rows:
        cells = [row["set"]]
        for who in ("ours", "peer"):
            r = row[who]
            total[who][0] += r["boxes_on_no_face"]
            total[who][1] += r["boxes"]
            cells.append(f"{r['boxes_on_no_face']} / {r['boxes']}")
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        lines.append("| all | " + " | ".join(f"{bad} / {n} ({100 * bad / max(n, 1):.1f}%)" for bad, n in total.values())
                     + " |")
    return "\n".join(lines) + "\n"


def markdown_table(result: dict) -> str:
    """The table: one row per set, ours and the peer, accuracy, the most common wrong class, faces found."""
    lines = [f"Living-room benchmark (seed {result['seed']}): crop sets use all {result['val_faces']} val faces; frame "
             f"sets the same {result['frames_per_frame_set']} val faces (seeded subset) in synthetic rooms. "
             "`wrong→` is the single most common wrong class and its share of all faces in the set; "
             "`found` the share of frames where a face was detected (a miss counts as wrong).", "",
             "| set | condition | n | ours acc | ours wrong→ | ours found | peer acc | peer wrong→ | peer found |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["sets"].values():
        cells = [row["set"], row["what"], str(row["n"])]
        for who in ("ours", "peer"):
            r = row[who]
            cells += [f"{r['accuracy']:.3f}", f"{r['top_wrong_class']} {100 * r['top_wrong_share']:.0f}%",
                      f"{100 * r['detected']:.0f}%" if "detected" in r else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, out_dir: Path) -> list[Path]:
    """accuracy vs face size (both frame sizes, with detection rate) and accuracy vs light, ours and the peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sets"]
    written = []
    frame_rows = [r for r in rows.values() if r["kind"] == "frames" and not r["dark"]]
    if frame_rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (width, height), style in (((640, 480), "-"), ((320, 240), "--")):
            series = sorted((r for r in frame_rows if r["width"] == width), key=lambda r: r["face_px"])
            if not series:
                continue
            px = [r["face_px"] for r in series]
            for who, colour in (("ours", "tab:blue"), ("peer", "tab:orange")):
                ax.plot(px, [r[who]["accuracy"] for r in series], style, marker="o", color=colour,
                        label=f"{who} accuracy, {width}×{height}")
                ax.plot(px, [r[who]["detected"] for r in series], style, marker="x", color=colour, alpha=0.35,
                        label=f"{who} faces found, {width}×{height}")
        ax.set_xlabel("face height in the frame (px)")
        ax.set_ylabel("share of frames")
        ax.set_ylim(0, 1.02)
        ax.set_title("accuracy and detection against face size (val faces in synthetic rooms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out_dir / "living_room_face_size.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    light = [n for n in ("clean", "dim_noise4", "gamma2.5", "dim_noise8") if n in rows]
    if light:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        x = np.arange(len(light))
        for offset, who, colour in ((-0.2, "ours", "tab:blue"), (0.2, "peer", "tab:orange")):
            ax.bar(x + offset, [rows[n][who]["accuracy"] for n in light], 0.4, color=colour, label=f"{who} accuracy")
            ax.plot(x + offset, [rows[n][who]["top_wrong_share"] for n in light], "k_", markersize=18)
        ax.set_xticks(x, [rows[n]["what"] for n in light], fontsize=8)
        ax.set_ylabel("accuracy (bars); ▬ share sent to the top wrong class")
        ax.set_ylim(0, 1)
        ax.set_title("accuracy against light (val crops)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out_dir / "living_room_light.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def card_summary(result: dict, table: str) -> dict:  # table: where the full table lives, relative to the repo
    """What the model card carries: per set, ours and the peer (accuracy, top wrong class share, faces found)."""
    sets = {}
    for name, row in result["sets"].items():
        sets[name] = {who: {k: row[who][k] for k in ("accuracy", "top_wrong_class", "top_wrong_share", "detected",
                                                     "boxes_on_no_face", "boxes")
                            if k in row[who]} for who in ("ours", "peer")}
    gate = {name: {start: {"wrong_mood_time": [row[start][arm]["wrong_mood_time"] for arm in ("without_gate", "with_gate")]}
                   for start in ("warm", "cold")} for name, row in result.get("mood_gate", {}).items()}
    return {"table": table, "seed": result["seed"], "frames_per_frame_set": result["frames_per_frame_set"],
            "measured": result["measured"], "sets": sets,
            "quality_gate_wrong_mood_time": {"meaning": "simulated listeners: share of time in a wrong mood on the "
                                             "set's crops, [without, with] the crop-quality gate", "sets": gate}}
