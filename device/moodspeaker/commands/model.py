"""`moodspeaker model install | rollback | list`: change the model the vision daemon runs, safely."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable
from pathlib import Path

from moodspeaker.errors import ModelError
from moodspeaker.model_card import ModelCard, card_path_for, load_card
from moodspeaker.model_store import ModelStore
from moodspeaker.paths import INSTALLED_MODELS, default_model

VISION_UNIT = "moodspeaker-vision.service"
Runner = Callable[..., subprocess.CompletedProcess]


def request_vision_reload(systemd_dir: Path = Path("/run/systemd/system"), run: Runner = subprocess.run) -> str:
    """Ask a running vision service to reload (SIGHUP: config and model rebuilt); say what happened."""
    if not systemd_dir.is_dir():
        return "systemd is not running here; restart `moodspeaker vision` yourself to use the new model"
    out = run(["systemctl", "try-reload-or-restart", VISION_UNIT], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return f"could not reload {VISION_UNIT}: {out.stderr.strip()}; run `sudo systemctl reload {VISION_UNIT}`"
    return f"asked {VISION_UNIT} to reload; see `moodspeaker status` or `journalctl -u {VISION_UNIT}`"


def _install(args: argparse.Namespace) -> int:
    try:
        target, golden = ModelStore(args.models_dir).install(args.model, args.card, args.golden)
    except ModelError as exc:
        raise ModelError(f"refused: {exc}\nthe current model is unchanged") from None
    print(f"installed {target.name} ({args.model.name}): golden faces {golden.accuracy:.4f} on {golden.n} "
          f"(card claims {golden.claimed:.4f} ± {golden.tolerance}); it is now current")
    if not args.no_reload:
        print(request_vision_reload())
    return 0


def _rollback(args: argparse.Namespace) -> int:
    target = ModelStore(args.models_dir).rollback()
    print(f"rolled back: {target.name} is current again")
    if not args.no_reload:
        print(request_vision_reload())
    return 0


def _describe(card: ModelCard) -> str:
    acc = card.val_accuracy
    return (f"{card.name or '?':16s} val accuracy {'?' if acc is None else f'{acc:.4f}'}  "
            f"measured {card.measured or '?'}")


def _list(args: argparse.Namespace) -> int:
    versions = ModelStore(args.models_dir).versions()
    if not versions:
        in_use = default_model()
        try:
            card = load_card(card_path_for(in_use))
            what = f"{card.sha256[:12]}  {_describe(card)}"
        except ModelError as exc:
            what = f"(unreadable: {exc})"
        print(f"no models installed in {args.models_dir}; the speaker runs {in_use}:\n"
              f"in use   {what}\ninstall another with `moodspeaker model install`")
        return 0
    for v in versions:
        mark = "current " if v.current else "previous" if v.previous else "        "
        print(f"{mark} {v.sha12}  {'(unreadable card)' if v.card is None else _describe(v.card)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="install, roll back or list the emotion models on this device")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser, reloads: bool) -> None:
        q.add_argument("--models-dir", type=Path, default=INSTALLED_MODELS,
                       help=f"where installed models live (default {INSTALLED_MODELS})")
        if reloads:
            q.add_argument("--no-reload", action="store_true", help="do not ask the vision service to reload")

    q = actions.add_parser("install", help="check a model against its card and golden faces, then make it current")
    q.add_argument("model", type=Path, metavar="FILE.tflite")
    q.add_argument("--card", type=Path, required=True, metavar="FILE.json", help="the model's card")
    q.add_argument("--golden", type=Path, metavar="FILE.npz",
                   help="golden faces (default: the card's golden file beside the card, else the current model's)")
    common(q, reloads=True)
    q.set_defaults(func=_install)

    q = actions.add_parser("rollback", help="make the previous model current again")
    common(q, reloads=True)
    q.set_defaults(func=_rollback)

    q = actions.add_parser("list", help="installed models, which is current and which previous")
    common(q, reloads=False)
    q.set_defaults(func=_list)
