"""`moodspeaker-train distill|dequantise|logits|import|export|report|living-room|sofa-clips`: train a model (PyTorch,
on a GPU or a CPU), recover float weights and soft targets from a shipped int8 model, export int8 TFLite (through
the Keras twin), report on val, and measure it under living-room conditions and on clips of a listener on a sofa."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from moodspeaker.errors import MoodspeakerError
from moodspeaker.model_card import sha256_file
from moodspeaker_train.data import DEFAULT_DATA, DataError, load_split
from moodspeaker_train.recipe import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]
SHIPPED_RUN = REPO / "runs/xception80-camera-ft"  # the shipped model's run (`distill`, then `import`): export and report read it
RUNS = REPO / "runs"  # distill writes runs/<recipe name> unless told --out
DATA_HELP = (
    "data set: a directory with train.npz/val.npz (shared/data/fer2013 layout), Kaggle's fer2013.csv, "
    f"or a directory with train/<class>/*.jpg and val/<class>/*.jpg (default {DEFAULT_DATA})"
)


def _cmd_distill(args: argparse.Namespace) -> int:
    from moodspeaker_train.distill import fit

    overrides = {key: value for key in ("epochs", "seed") if (value := getattr(args, key)) is not None}
    recipe = load_recipe(args.config, overrides)
    train, val = load_split(args.data, "train"), load_split(args.data, "val")
    out = args.out or RUNS / args.config.stem
    state = fit(recipe, train, val, out, teacher_runs=args.teacher, minutes=args.minutes, resume=args.resume,
                targets=args.targets, init_from=args.init_from)
    print(f"best val accuracy (float) {state['best_val_accuracy']:.4f} at epoch {state['best_epoch']}; "
          f"checkpoints in {out}")
    return 0


def _cmd_dequantise(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    import torch

    from moodspeaker_train import dequantise, torch_models
    from moodspeaker_train.distill import build, evaluate

    recipe = load_recipe(args.config)
    if recipe.arch != "xception":
        raise ValueError(f"{args.config}: dequantise fills the xception twin, not {recipe.arch!r}")
    train, val = load_split(args.data, "train"), load_split(args.data, "val")
    twin = dequantise.load_int8(args.model, build(recipe).eval())
    sample = np.random.default_rng(0).choice(len(train), min(len(train), args.calibration), replace=False)
    dequantise.calibrate_batch_norm(twin, train.images[np.sort(sample)])
    _, accuracy = evaluate(twin, torch.from_numpy(val.images), torch.from_numpy(val.labels.astype(np.int64)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **torch_models.keras_weights(twin))
    provenance = {
        "what": "float weights of the int8 model's twin (Keras layouts, like a distill run's best.weights.npz)",
        "from_model": str(args.model.name), "from_model_sha256": sha256_file(args.model),
        "recipe": str(args.config.name), "arch_args": recipe.arch_args,
        "how": "int8 weights and int32 biases dequantised with their scales; each folded batch norm rebuilt as an "
               f"identity with the statistics of {len(sample)} train faces (moodspeaker_train/dequantise.py)",
        "val": {"n": len(val), "accuracy_float": round(accuracy, 4)},
        "data_sha256": {s: sha256_file(args.data / f"{s}.npz") for s in ("train", "val")
                        if (args.data / f"{s}.npz").is_file()},
    }
    args.out.with_suffix(".json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {args.out}: float val accuracy {accuracy:.4f} (n={len(val)})")
    return 0


def _cmd_logits(args: argparse.Namespace) -> int:
    from moodspeaker_train import dequantise
    from moodspeaker_train.targets import save_logits

    if bool(args.model) == bool(args.teacher):
        raise ValueError("give either --model FILE.tflite or one or more --teacher RUN")
    splits = {name: load_split(args.data, name) for name in ("train", "val")}
    if args.model:
        logits = {name: dequantise.shipped_logits(args.model, faces.images) for name, faces in splits.items()}
        provenance = {"source": "int8 model", "model": args.model.name, "model_sha256": sha256_file(args.model)}
    else:
        from moodspeaker_train.distill import teacher_logits

        logits = {name: teacher_logits(args.teacher, faces.images) for name, faces in splits.items()}
        provenance = {"source": "teacher runs", "teachers": teacher_provenance(args.teacher)}
    provenance["averaged"] = "over the sources and over each face and its mirror image"
    provenance["data"] = str(args.data)
    provenance["data_sha256"] = {s: sha256_file(args.data / f"{s}.npz") for s in ("train", "val")
                                 if (args.data / f"{s}.npz").is_file()}
    meta = save_logits(args.out, {name: (faces, logits[name]) for name, faces in splits.items()}, provenance)
    print(f"wrote {args.out}: " + ", ".join(f"{name} {m['n']} faces, accuracy {m['accuracy']:.4f}"
                                            for name, m in meta["splits"].items()))
    return 0


def teacher_provenance(runs: list[Path]) -> list[dict]:
    import json

    out = []
    for run in runs:
        recipe = json.loads((run / "recipe.json").read_text())
        state = json.loads((run / "state.json").read_text())
        out.append({"run": run.name, "arch": recipe["arch"], "arch_args": recipe["arch_args"], "seed": recipe["seed"],
                    "epochs_run": state["epoch"], "device": state.get("device"),
                    "train_seconds": state.get("train_seconds"), "val_accuracy_float": state["best_val_accuracy"]})
    return out


def _cmd_import(args: argparse.Namespace) -> int:
    from moodspeaker_train.export import import_distilled

    print(f"wrote {import_distilled(args.run)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from moodspeaker_train.export import export_int8

    train = load_split(args.data, "train")
    size = export_int8(args.run / "best.keras", train, args.out, n_calibration=args.calibration)
    print(f"wrote {args.out} ({size / 1024:.0f} KiB, full-integer int8)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from moodspeaker_train.report import report

    val = load_split(args.data, "val")
    card = report(args.run, args.model, val, data_name=str(args.data), peer=args.peer, out_dir=args.out,
                  face_margin=args.face_margin)
    print(f"int8 val accuracy {card['metrics']['val']['accuracy']:.4f}, macro-F1 {card['metrics']['val']['macro_f1']:.4f}; "
          f"card {args.model.with_suffix('.json')}, figures in {args.out}")
    return 0


def _cmd_living_room(args: argparse.Namespace) -> int:
    import json

    from moodspeaker_train import living_room

    val = load_split(args.data, "val")
    result = living_room.benchmark(val, args.work, model=args.model, frames=args.frames, seed=args.seed,
                                   sets=tuple(args.sets) if args.sets else None, keep=args.keep)
    crop_sets = tuple(name for name in result["sets"] if name in living_room.CROP_SETS)
    result["mood_gate"] = living_room.mood_gate_study(val, args.model, args.seed, crop_sets)
    result["false_faces"] = living_room.false_faces(args.seed, rooms=args.rooms)
    args.out.mkdir(parents=True, exist_ok=True)
    table = "\n".join((living_room.markdown_table(result), living_room.markdown_boxes_on_no_face(result),
                       living_room.markdown_false_faces(result["false_faces"]),
                       living_room.markdown_gate_table(result["mood_gate"])))
    (args.out / "living_room.md").write_text(table)
    (args.out / "living_room.json").write_text(json.dumps(result, indent=1))
    figures = living_room.plot(result, args.out)
    print(table)
    print(f"wrote {args.out / 'living_room.md'}, living_room.json, " + ", ".join(f.name for f in figures))
    if args.card:
        _summarise_in_card(args.model, "living_room", lambda where: living_room.card_summary(result, where),
                           args.out / "living_room.md")
    return 0


def _cmd_sofa_clips(args: argparse.Namespace) -> int:
    import json

    from moodspeaker_train import sofa_clips

    result = sofa_clips.measure(args.clips, args.model)
    table = sofa_clips.markdown_table(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sofa_clips.md").write_text(table)
    (args.out / "sofa_clips.json").write_text(json.dumps(result, indent=1))
    print(table)
    print(f"wrote {args.out / 'sofa_clips.md'}, sofa_clips.json")
    if args.card:
        _summarise_in_card(args.model, "sofa_clips", lambda where: sofa_clips.card_summary(result, where),
                           args.out / "sofa_clips.md")
    return 0


def _summarise_in_card(model: Path, section: str, summary: Callable[[str], dict], table: Path) -> None:
    """Put `summary(where the full table lives, relative to the repo)` into the model's card as `section`; the
    model file and its SHA stay as they are."""
    import json

    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card[section] = summary(str(table.relative_to(REPO) if table.is_relative_to(REPO) else table))
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(f"summary in {card_path} ({section})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moodspeaker-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("distill", help="train with PyTorch (on a GPU if there is one, else the CPU; resumable): a "
                       "teacher, a student distilled from --teacher runs or --targets logits, or a fine-tune (--init-from)")
    p.add_argument("--config", type=Path, required=True, help="recipe TOML, e.g. training/configs/xception48-kd.toml")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=DATA_HELP)
    p.add_argument("--out", type=Path, help="run directory (checkpoints, logs); default runs/<recipe name>")
    p.add_argument("--teacher", type=Path, action="append", default=[], help="a teacher run directory (repeatable)")
    p.add_argument("--targets", type=Path, help="distil from these committed logits (`moodspeaker-train logits`, "
                   "e.g. training/artifacts/xception80-kd.logits.npz) instead of live --teacher runs: no GPU needed")
    p.add_argument("--init-from", type=Path, help="start from these float weights (a best.weights.npz, e.g. "
                   "training/artifacts/xception80-kd.weights.npz): fine-tuning")
    p.add_argument("--minutes", type=float, help="fit the epoch count to this wall-clock budget after epoch 2")
    p.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    p.add_argument("--seed", type=int, help="override the recipe's seed (a second teacher for the ensemble)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("dequantise", help="float weights (best.weights.npz layout) from a shipped int8 model, "
                       "with their val accuracy: a start for fine-tuning when the float run is lost")
    p.add_argument("--model", type=Path, required=True, help="the int8 .tflite (e.g. an earlier models/emotion.tflite "
                   "from git: `git show b1ffa57:models/emotion.tflite > kd.tflite` is xception80-kd)")
    p.add_argument("--config", type=Path, default=REPO / "training/configs/xception80-kd.toml",
                   help="the recipe the model was trained with (its architecture)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=DATA_HELP)
    p.add_argument("--calibration", type=int, default=4096, help="train faces for the batch-norm statistics")
    p.add_argument("--out", type=Path, required=True, help="FILE.weights.npz; its provenance goes to FILE.weights.json "
                   "(training/artifacts/xception80-kd.weights.npz came from xception80-kd)")
    p.set_defaults(func=_cmd_dequantise)

    p = sub.add_parser("logits", help="flip-averaged logits on every train and val face (float16), the soft "
                       "targets `distill --targets` reads: from an int8 model or from teacher runs")
    p.add_argument("--model", type=Path, help="an int8 .tflite (e.g. models/emotion.tflite)")
    p.add_argument("--teacher", type=Path, action="append", default=[], help="a teacher run directory (repeatable)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=DATA_HELP)
    p.add_argument("--out", type=Path, required=True, help="FILE.npz; its provenance goes to FILE.json")
    p.set_defaults(func=_cmd_logits)

    p = sub.add_parser("import", help="turn a distilled run's best.weights.npz into best.keras for export/report")
    p.add_argument("--run", type=Path, default=SHIPPED_RUN)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("export", help="full-integer int8 TFLite from a run's best checkpoint")
    p.add_argument("--run", type=Path, default=SHIPPED_RUN)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=DATA_HELP + "; train faces calibrate")
    p.add_argument("--out", type=Path, default=REPO / "models/emotion.tflite")
    p.add_argument("--calibration", type=int, default=1000, help="representative train faces")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("report", help="float vs int8 on val, figures, and the model card")
    p.add_argument("--run", type=Path, default=SHIPPED_RUN)
    p.add_argument("--model", type=Path, default=REPO / "models/emotion.tflite")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=DATA_HELP)
    p.add_argument("--peer", type=Path, help="peer int8 model to compare (fer package's emotion_model_quantized.tflite)")
    p.add_argument("--out", type=Path, default=REPO / "training/report", help="where figures and report.json go")
    p.add_argument("--face-margin", type=float, default=0.0,
                   help="fraction of the detector's face box added per side before cropping (tuned on val frames)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("living-room", help="accuracy under dim light, noise, blur, distance and occlusion (sets built "
                       "from val only), through `moodspeaker eval`, ours and the peer side by side")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=DATA_HELP + "; only val is read")
    p.add_argument("--model", type=Path, default=REPO / "models/emotion.tflite", help="our int8 model (with its card)")
    p.add_argument("--frames", type=int, default=600, help="val faces per whole-frame set (seeded subset; crop sets "
                   "use all of val)")
    p.add_argument("--seed", type=int, default=11, help="seed for every perturbation, room and face subset")
    p.add_argument("--rooms", type=int, default=300, help="empty rooms per frame size for the false-face rate")
    p.add_argument("--sets", nargs="+", help="only these sets (default: all; names as in the table)")
    p.add_argument("--work", type=Path, default=RUNS / "living-room", help="where the set files are built")
    p.add_argument("--keep", action="store_true", help="keep the built npz sets in --work (frame sets are ~180 MB each)")
    p.add_argument("--out", type=Path, default=REPO / "training/report", help="table (living_room.md/.json) and plots")
    p.add_argument("--card", action="store_true", help="also write the summary into --model's card (its SHA stays)")
    p.set_defaults(func=_cmd_living_room)

    p = sub.add_parser("sofa-clips", help="`moodspeaker bench --truth` on each seed's sofa clips "
                       "(scripts/make_sofa_clips.py), ours and the peer: the table for the README and the model card")
    p.add_argument("clips", type=Path, nargs="+", help="a folder of one seed's clips (make_sofa_clips.py --out)")
    p.add_argument("--model", type=Path, default=REPO / "models/emotion.tflite", help="our int8 model (with its card)")
    p.add_argument("--out", type=Path, default=REPO / "training/report", help="where sofa_clips.md/.json go")
    p.add_argument("--card", action="store_true", help="also write the summary into --model's card (its SHA stays)")
    p.set_defaults(func=_cmd_sofa_clips)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, RecipeError, MoodspeakerError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"moodspeaker-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
