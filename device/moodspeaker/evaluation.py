"""Accuracy of a classifier on labelled face crops or whole frames, through the device's own preprocessing."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from moodspeaker.core.domain import Box
from moodspeaker.core.emotions import EMOTIONS
from moodspeaker.core.metrics import confusion_matrix, summarize

Classify = Callable[[np.ndarray], np.ndarray]


def evaluate_crops(classify: Classify, model_labels: tuple[str, ...], images: np.ndarray, labels: np.ndarray) -> dict:
    """Run `classify` on each (H, W) uint8 crop; labels are FER2013 class indices.

    Returns the DESIGN.md eval object: n, accuracy, macro_f1, per_class_recall, confusion, ms_per_face
    (+ per-class precision and F1). Predictions are mapped from the model's label order to FER2013's.
    """
    to_fer = np.array([EMOTIONS.index(lab) for lab in model_labels])
    preds = np.empty(len(images), np.int64)
    t0 = time.perf_counter()
    for i, face in enumerate(images):
        preds[i] = to_fer[int(np.argmax(classify(face)))]
    elapsed = time.perf_counter() - t0
    out = summarize(confusion_matrix(labels, preds, len(EMOTIONS)), EMOTIONS)
    out["ms_per_face"] = round(1000 * elapsed / max(len(images), 1), 4)
    return out


Detect = Callable[[np.ndarray], list[Box]]
Crop = Callable[[np.ndarray, Box], np.ndarray]


def evaluate_frames(detect: Detect, crop: Crop, classify: Classify, model_labels: tuple[str, ...], frames: np.ndarray,
                    labels: np.ndarray, faces: np.ndarray | None = None) -> dict:
    """Whole frames through detector (largest face), crop and classifier; a frame with no face found is wrong.

    Returns the eval object of `evaluate_crops` plus `detected` (frames with a face found), `boxes` (every box
    the detector returned), `ms_detect` (per frame) and `ms_per_face` (crop + classify, per face found).
    `confusion` gets an eighth column: frames of each true class where no face was found. Given `faces` (N,4:
    each frame's face as x, y, w, h, -1s for none), also `boxes_on_no_face`: boxes in a frame with nobody, off
    the face, or under half its side (an eye, a mouth; dev.demo_clip.box_placement, as the sofa clips count them).
    """
    if faces is not None:
        from moodspeaker.dev.demo_clip import box_placement
    to_fer = np.array([EMOTIONS.index(lab) for lab in model_labels])
    no_face = len(EMOTIONS)
    preds = np.full(len(frames), no_face, np.int64)
    detect_s = classify_s = 0.0
    boxes_found = boxes_on_no_face = 0
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        boxes = detect(frame)
        t1 = time.perf_counter()
        detect_s += t1 - t0
        if boxes:
            preds[i] = to_fer[int(np.argmax(classify(crop(frame, boxes[0]))))]
            classify_s += time.perf_counter() - t1
        boxes_found += len(boxes)
        if faces is not None:
            x, y, w, h = (int(v) for v in faces[i])
            face = None if w <= 0 else (x, y, max(w, h))
            boxes_on_no_face += sum(box_placement(box, face) == "no face" for box in boxes)
    conf = confusion_matrix(labels, preds, no_face + 1)
    out = summarize(conf, (*EMOTIONS, "no_face"))
    for key in ("per_class_recall", "per_class_precision", "per_class_f1"):
        del out[key]["no_face"]
    detected = int((preds != no_face).sum())
    out["confusion"] = conf[:no_face].tolist()
    out["detected"] = detected
    out["boxes"] = boxes_found
    if faces is not None:
        out["boxes_on_no_face"] = boxes_on_no_face
    out["ms_detect"] = round(1000 * detect_s / max(len(frames), 1), 4)
    out["ms_per_face"] = round(1000 * classify_s / max(detected, 1), 4)
    return out
