"""The PyTorch trainer, here on the CPU: the Keras twin, augmentation, schedule, the whole path teacher -> distilled
student -> import -> int8 export -> report -> device, and training without teachers from committed logits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: `make torch` adds it (README: Training the model)")

from moodspeaker.adapters.litert_classifier import LiteRTClassifier  # noqa: E402
from moodspeaker.model_card import sha256_file  # noqa: E402
from moodspeaker_train import models, torch_models  # noqa: E402
from moodspeaker_train.cli import main as train_main  # noqa: E402
from moodspeaker_train.distill import augment, lr_at  # noqa: E402
from moodspeaker_train.export import import_distilled, set_twin_weights  # noqa: E402
from moodspeaker_train.recipe import AugmentConfig  # noqa: E402

pytestmark = pytest.mark.training

TINY_TEACHER = """
arch = "resnet_teacher"
epochs = 1
batch_size = 64
warmup_epochs = 0
ema_decay = 0.9
[arch_args]
widths = [8, 16]
blocks = 1
"""
TINY_STUDENT = """
arch = "xception"
epochs = 1
batch_size = 64
warmup_epochs = 0
distill_weight = 0.7
mixup = 0.2
ema_decay = 0.9
[arch_args]
stem = [8, 16]
widths = [16, 32, 48]
extra = [0, 1, 1]
"""


def _randomised_twin(**arch_args) -> torch_models.Xception:
    """A twin with non-trivial batch-norm statistics, so that a misplaced array shows in the output."""
    torch.manual_seed(0)
    model = torch_models.Xception(**arch_args).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return model


@pytest.mark.parametrize("arch_args", [{}, {"stem": (16, 40), "widths": (80, 160, 320), "extra": (0, 1, 2)},
                                       {"stem": (8, 16), "widths": (16, 32, 48), "extra": (1, 2, 0)}])
def test_twin_weights_give_the_keras_model_the_same_logits(arch_args):
    twin = _randomised_twin(**arch_args)
    keras_model = models.xception(48, **arch_args)
    set_twin_weights(keras_model, torch_models.keras_weights(twin), "test")
    pixels = np.random.default_rng(0).integers(0, 256, (6, 48, 48, 1)).astype(np.float32)
    expected = twin(torch.from_numpy(pixels).permute(0, 3, 1, 2)).detach().numpy()
    got = keras_model.predict(pixels, verbose=0)
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(expected).max() > 0.1  # the comparison is not between two near-zero outputs


def test_twin_weights_of_another_architecture_are_refused():
    weights = torch_models.keras_weights(_randomised_twin(extra=(0, 1, 1)))
    with pytest.raises(ValueError, match="does not match"):
        set_twin_weights(models.xception(48, widths=(64, 128, 192)), weights, "w.npz")
    with pytest.raises(ValueError, match="holds"):
        set_twin_weights(models.xception(48, extra=(0, 1, 0)), weights, "w.npz")


def test_augment_flip_alone_mirrors_each_face_exactly():
    cfg = AugmentConfig(rotate_deg=0, scale=0, shift=0, brightness=0, contrast=0, erase_prob=0)
    faces = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (64, 1, 48, 48)).astype(np.float32))
    out = augment(faces, cfg)
    same = torch.isclose(out, faces, atol=1e-3).flatten(1).all(1)
    mirrored = torch.isclose(out, faces.flip(-1), atol=1e-3).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54


def test_augment_keeps_shape_and_pixel_range():
    faces = torch.full((32, 1, 48, 48), 200.0)
    out = augment(faces, AugmentConfig(erase_prob=1.0))
    assert out.shape == faces.shape and float(out.min()) >= 0.0 and float(out.max()) <= 255.0
    assert not torch.equal(out, faces)


def test_schedule_warms_up_from_a_tenth_and_ends_at_a_hundredth():
    assert lr_at(0, 1000, 100, 1.0) == pytest.approx(0.1)
    assert lr_at(100, 1000, 100, 1.0) == pytest.approx(1.0)
    assert lr_at(1000, 1000, 100, 1.0) == pytest.approx(0.01)
    assert lr_at(550, 1000, 100, 1.0) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, fer_tiny):
    out = tmp_path_factory.mktemp("distill")
    (out / "teacher.toml").write_text(TINY_TEACHER)
    (out / "student.toml").write_text(TINY_STUDENT)
    teacher, student, model = out / "teacher", out / "student", out / "models" / "emotion.tflite"
    data = ["--data", str(fer_tiny)]
    assert train_main(["distill", "--config", str(out / "teacher.toml"), *data, "--out", str(teacher)]) == 0
    assert train_main(["distill", "--config", str(out / "student.toml"), *data, "--out", str(student),
                       "--teacher", str(teacher)]) == 0
    assert train_main(["import", "--run", str(student)]) == 0
    assert train_main(["export", "--run", str(student), *data, "--out", str(model), "--calibration", "64"]) == 0
    assert train_main(["report", "--run", str(student), "--model", str(model), *data,
                       "--out", str(out / "report")]) == 0
    return teacher, student, model


def test_distill_writes_run_files_and_keras_order_weights(distilled):
    teacher, student, _ = distilled
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "recipe.json", "state.json"):
        assert (teacher / name).is_file() and (student / name).is_file(), name
    assert not (teacher / "best.weights.npz").exists()  # the teacher has no Keras twin: never exported
    assert (student / "best.weights.npz").is_file() and (student / "best.keras").is_file()
    assert json.loads((student / "state.json").read_text())["teachers"] == [str(teacher)]


def test_imported_student_runs_on_the_device_and_its_card_names_the_teacher(distilled, fer_tiny):
    _, _, model = distilled
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["name"] == "student"
    assert card["training"]["distilled_from"][0]["run"] == "teacher"
    assert card["training"]["recipe"]["distill_weight"] == 0.7
    assert card["preprocessing"]["device"]["enhance"] == "none"  # trained without the device's enhancement
    probs = LiteRTClassifier(model).classify(np.load(fer_tiny / "val.npz")["images"][0])
    assert probs.shape == (7,) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_minutes_fit_the_epoch_count_after_the_second_epoch(tmp_path, fer_tiny):
    (tmp_path / "t.toml").write_text(TINY_TEACHER.replace("epochs = 1", "epochs = 50"))
    run = tmp_path / "run"
    assert train_main(["distill", "--config", str(tmp_path / "t.toml"), "--data", str(fer_tiny),
                       "--out", str(run), "--minutes", "0.001"]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["epochs"] == state["epoch"] == 2  # the budget was spent: it stops at the minimum, not at 50


def test_a_distilling_recipe_without_teachers_is_a_clear_error(tmp_path, fer_tiny, capsys):
    (tmp_path / "s.toml").write_text(TINY_STUDENT)
    assert train_main(["distill", "--config", str(tmp_path / "s.toml"), "--data", str(fer_tiny),
                       "--out", str(tmp_path / "run")]) == 2
    assert "--teacher" in capsys.readouterr().err


def test_resume_reloads_the_last_checkpoint_of_a_finished_run(distilled, fer_tiny, tmp_path, capsys):
    _, student, _ = distilled
    (tmp_path / "s.toml").write_text(TINY_STUDENT)
    before = (student / "history.csv").read_text()
    assert train_main(["distill", "--config", str(tmp_path / "s.toml"), "--data", str(fer_tiny), "--out", str(student),
                       "--teacher", str(student.parent / "teacher"), "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert (student / "history.csv").read_text() == before  # finished: nothing more trained


def test_distill_refuses_to_overwrite_and_import_needs_student_weights(distilled, fer_tiny, tmp_path, capsys):
    teacher, _, _ = distilled
    (tmp_path / "t.toml").write_text(TINY_TEACHER)
    assert train_main(["distill", "--config", str(tmp_path / "t.toml"), "--data", str(fer_tiny),
                       "--out", str(teacher)]) == 2
    assert "--resume" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="distill"):
        import_distilled(teacher)


def test_dequantised_int8_student_computes_what_the_int8_model_does(distilled, fer_tiny, tmp_path):
    from moodspeaker_train.distill import build
    from moodspeaker_train.recipe import load_recipe

    _, _, model = distilled
    (tmp_path / "s.toml").write_text(TINY_STUDENT)
    weights = tmp_path / "float.weights.npz"
    assert train_main(["dequantise", "--model", str(model), "--config", str(tmp_path / "s.toml"),
                       "--data", str(fer_tiny), "--calibration", "200", "--out", str(weights)]) == 0
    provenance = json.loads(weights.with_suffix(".json").read_text())
    assert provenance["from_model_sha256"] == sha256_file(model) and provenance["val"]["n"] == 210

    faces = np.load(fer_tiny / "val.npz")["images"]
    twin = build(load_recipe(tmp_path / "s.toml")).eval()
    with np.load(weights) as saved:
        torch_models.load_keras_weights(twin, {k: saved[k] for k in saved.files}, str(weights))
    with torch.no_grad():
        float_logits = twin(torch.from_numpy(faces[:, None].astype(np.float32))).numpy()
    clf = LiteRTClassifier(model)
    int8_logits = np.stack([clf.logits(clf.prepare(face)) for face in faces])
    spread = int8_logits.max() - int8_logits.min()
    assert spread > 0.05  # the comparison is not between two near-constant outputs
    assert np.abs(float_logits - int8_logits).max() < 0.1 * spread + 0.05
    assert (float_logits.argmax(1) == int8_logits.argmax(1)).mean() > 0.9
    # The rebuilt batch norms carry the faces' real statistics, not the identity they were loaded as.
    norms = [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(m.running_var.mean()) != pytest.approx(1.0 - m.eps) for m in norms)


def test_calibrated_batch_norm_leaves_the_function_alone_and_fits_training_mode():
    from moodspeaker_train.dequantise import calibrate_batch_norm

    twin = torch_models.Xception(stem=(8, 16), widths=(16, 32, 48), extra=(0, 1, 1), dropout=0.0).eval()
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # an int8 model's folded layers: identity batch norms
                m.weight.fill_(1.0)
                m.running_var.fill_(1.0 - m.eps)
                m.bias.uniform_(-0.3, 0.3)
    faces = np.random.default_rng(2).integers(0, 256, (256, 48, 48)).astype(np.uint8)
    x = torch.from_numpy(faces[:, None].astype(np.float32))
    with torch.no_grad():
        before = twin(x)
        calibrate_batch_norm(twin, faces, batch=64)
        after = twin(x)
        in_training_mode = twin.train()(x)
    assert torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(before, in_training_mode, atol=0.05 * float(before.abs().max()))


def test_a_student_distils_from_committed_logits_without_teachers(distilled, fer_tiny, tmp_path, capsys):
    from moodspeaker_train.data import load_split
    from moodspeaker_train.targets import load_logits

    teacher, student, _ = distilled
    logits = tmp_path / "t.logits.npz"
    assert train_main(["logits", "--teacher", str(teacher), "--data", str(fer_tiny), "--out", str(logits)]) == 0
    meta = json.loads(logits.with_suffix(".json").read_text())
    assert meta["source"] == "teacher runs" and meta["teachers"][0]["run"] == "teacher"
    assert meta["splits"]["train"]["n"] == 420 and meta["splits"]["val"]["n"] == 210
    with np.load(logits) as saved:
        assert saved["train"].dtype == np.float16 and saved["train"].shape == (420, 7)

    (tmp_path / "s.toml").write_text(TINY_STUDENT.replace('arch = "xception"', 'arch = "xception"\nselect_on = "camera"'))
    run = tmp_path / "run"
    assert train_main(["distill", "--config", str(tmp_path / "s.toml"), "--data", str(fer_tiny), "--out", str(run),
                       "--targets", str(logits), "--init-from", str(student / "best.weights.npz")]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["teachers"] == [] and state["targets"] == str(logits)
    assert set(state["best_camera_accuracy"]) == {"dim_noise8", "blur2"}
    assert "val_dim_noise8" in (run / "history.csv").read_text().splitlines()[0]
    assert (run / "best.weights.npz").is_file()
    model = tmp_path / "models" / "emotion.tflite"
    assert train_main(["import", "--run", str(run)]) == 0
    assert train_main(["export", "--run", str(run), "--data", str(fer_tiny), "--out", str(model),
                       "--calibration", "64"]) == 0
    assert train_main(["report", "--run", str(run), "--model", str(model), "--data", str(fer_tiny),
                       "--out", str(tmp_path / "report")]) == 0
    training = json.loads(model.with_suffix(".json").read_text())["training"]  # the card says whose logits
    assert training["distilled_from_logits"]["teachers"][0]["run"] == "teacher"
    assert training["init_from"] == "best.weights.npz" and "distilled_from" not in training

    # Logits of other faces are refused, with what to do.
    train = load_split(fer_tiny, "train")
    with pytest.raises(ValueError, match="other faces"):
        load_logits(logits, "val", train)
    capsys.readouterr()
    assert train_main(["distill", "--config", str(tmp_path / "s.toml"), "--data", str(fer_tiny), "--out",
                       str(tmp_path / "run2"), "--targets", str(logits), "--teacher", str(teacher)]) == 2
    assert "not both" in capsys.readouterr().err


def test_init_from_starts_the_student_from_those_weights(distilled, fer_tiny, tmp_path):
    _, student, model = distilled
    logits = tmp_path / "m.logits.npz"
    assert train_main(["logits", "--model", str(model), "--data", str(fer_tiny), "--out", str(logits)]) == 0
    assert json.loads(logits.with_suffix(".json").read_text())["source"] == "int8 model"
    (tmp_path / "s.toml").write_text(TINY_STUDENT.replace("ema_decay = 0.9", "ema_decay = 0.0\nlr = 1e-9"))
    run = tmp_path / "run"
    assert train_main(["distill", "--config", str(tmp_path / "s.toml"), "--data", str(fer_tiny), "--out", str(run),
                       "--targets", str(logits), "--init-from", str(student / "best.weights.npz")]) == 0
    with np.load(student / "best.weights.npz") as start, np.load(run / "best.weights.npz") as end:
        convs = [k for k in start.files if k.startswith(("conv", "depthwise", "dense"))]
        assert convs and all(np.allclose(start[k], end[k], atol=1e-5) for k in convs)


def test_the_committed_float_weights_compute_what_the_shipped_int8_model_does(fer_tiny, shipped_model):
    """The shipped model is the int8 export of the committed camera fine-tune's float weights."""
    from moodspeaker_train import dequantise
    from moodspeaker_train.distill import build
    from moodspeaker_train.recipe import load_recipe

    artifacts = Path(__file__).resolve().parents[1] / "training" / "artifacts"
    provenance = json.loads((artifacts / "xception80-camera-ft.weights.json").read_text())
    assert provenance["shipped_int8_sha256"] == sha256_file(shipped_model)
    twin = build(load_recipe(artifacts.parents[1] / provenance["recipe"])).eval()
    with np.load(artifacts / "xception80-camera-ft.weights.npz") as saved:
        torch_models.load_keras_weights(twin, {k: saved[k] for k in saved.files}, "xception80-camera-ft.weights.npz")
    faces = np.load(fer_tiny / "val.npz")["images"]
    x = torch.from_numpy(faces[:, None].astype(np.float32))
    with torch.no_grad():
        float_logits = (twin(x) + twin(x.flip(-1))) / 2
    int8_logits = dequantise.shipped_logits(shipped_model, faces)
    assert (float_logits.argmax(1).numpy() == int8_logits.argmax(1)).mean() > 0.95
    assert np.abs(float_logits.numpy() - int8_logits).mean() < 0.1 * np.abs(int8_logits).mean()
