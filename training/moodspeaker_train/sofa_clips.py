"""The sofa clip table: `moodspeaker bench --truth` on every clip of one or more seeded sets
(scripts/make_sofa_clips.py), ours and the peer, for the README and the model card.

Per clip and side it keeps what an owner counts (faces reached, wrong moods, seconds to the first mood) and
what the detector boxed (boxes on no face, misframed boxes), as `moodspeaker.dev.demo_clip` scores them.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from moodspeaker.errors import UsageError

KINDS = ("full72", "lamp72", "full36", "lamp48")  # scripts/make_sofa_clips.py's kinds, the table order
SIZE = "640x480"  # the clips' own size
KEPT = ("faces", "faces_reached", "wrong_moods", "first_mood_s", "boxes", "boxes_on_no_face", "boxes_on_no_face_counted",
        "boxes_misframed", "fps")


def clip_seed(clip: Path) -> int:
    """The seed a clip's description was written with (make_sofa_clips.py records it)."""
    try:
        return int(json.loads(clip.read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{clip}: not a sofa clip description with a seed (regenerate it with "
                         f"scripts/make_sofa_clips.py): {exc!r}") from None


def measure(clip_dirs: list[Path], model: Path | None = None) -> dict:
    """Every kind found in each directory (one seed's clips), through `moodspeaker bench --truth`, both sides."""
    from moodspeaker.commands.bench import run_bench

    clips: dict[str, dict] = {}
    seeds = []
    for folder in clip_dirs:
        found = [kind for kind in KINDS if (folder / f"{kind}.json").is_file()]
        if not found:
            raise UsageError(f"{folder}: no sofa clips ({', '.join(k + '.json' for k in KINDS)}); write them with "
                             f"scripts/make_sofa_clips.py --out {folder}")
        seed = clip_seed(folder / f"{found[0]}.json")
        seeds.append(seed)
        for kind in found:
            truth = folder / f"{kind}.json"
            bench = run_bench(model, truth, paced_fps=0.0, paced_seconds=0.0, sizes=(SIZE,))
            entry = clips.setdefault(kind, {"what": json.loads(truth.read_text()).get("what", kind), "seeds": {}})
            entry["seeds"][str(seed)] = {side: {k: bench[side][SIZE].get(k) for k in KEPT} for side in ("ours", "peer")}
    return {"measured": datetime.date.today().isoformat(), "seeds": seeds, "size": SIZE, "clips": clips}


def _moods(rows: list[dict], side: str) -> str:
    return ", ".join(f"{r[side]['faces_reached']} / {r[side]['wrong_moods']}" for r in rows) + f" of {rows[0][side]['faces']}"


def _boxes(rows: list[dict], side: str) -> str:
    return ", ".join(f"{r[side]['boxes_on_no_face']} ({r[side]['boxes_on_no_face_counted']}) / {r[side]['boxes_misframed']} "
                     f"of {r[side]['boxes']}" for r in rows)


def markdown_table(result: dict) -> str:
    """Faces reached / wrong moods, then boxes on no face (those of them whose crop reached the smoother) /
    misframed, per clip: the seeds in turn, ours vs peer."""
    seeds = ", ".join(str(s) for s in result["seeds"])
    lines = [f"Sofa clips ({result['size']}, 10 fps, `moodspeaker bench --truth`; seeds {seeds} in turn; "
             f"measured {result['measured']})", "",
             "| clip | ours: faces reached / wrong moods | peer "
             "| ours: boxes on no face (counted) / misframed, of boxes | peer |",
             "|---|---|---|---|---|"]
    for entry in result["clips"].values():
        rows = [entry["seeds"][str(s)] for s in result["seeds"] if str(s) in entry["seeds"]]
        lines.append(f"| {entry['what']} | {_moods(rows, 'ours')} | {_moods(rows, 'peer')} | {_boxes(rows, 'ours')} "
                     f"| {_boxes(rows, 'peer')} |")
    return "\n".join(lines) + "\n"


def card_summary(result: dict, table: str) -> dict:  # table: where the full table lives, relative to the repo
    """What the model card carries: per clip and seed, [faces reached, wrong moods] for ours and the peer."""
    clips = {kind: {"what": entry["what"],
                    **{side: {seed: [row[side]["faces_reached"], row[side]["wrong_moods"]]
                              for seed, row in entry["seeds"].items()} for side in ("ours", "peer")}}
             for kind, entry in result["clips"].items()}
    first = next(iter(next(iter(result["clips"].values()))["seeds"].values()))
    return {"table": table, "measured": result["measured"], "faces": first["ours"]["faces"],
            "meaning": "per clip, side and seed: [faces whose mood the speaker reached, wrong moods it showed]",
            "clips": clips}
