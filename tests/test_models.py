"""Every committed recipe builds a model the exporter and the device expect: raw pixels in, 7 logits out."""

from pathlib import Path

import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch", reason="PyTorch is not installed: `make torch` adds it (README: Training the model)")

from moodspeaker_train import distill, models  # noqa: E402
from moodspeaker_train.recipe import load_recipe  # noqa: E402

CONFIGS = sorted((Path(__file__).parents[1] / "training" / "configs").glob("*.toml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_recipe_builds_a_pixels_in_logits_out_model(config: Path) -> None:
    recipe = load_recipe(config)
    net = distill.build(recipe).eval()
    assert net(torch.full((2, 1, recipe.size, recipe.size), 128.0)).shape == (2, models.NUM_CLASSES)
    if recipe.arch not in models.ARCHITECTURES:  # a GPU teacher: never exported
        return
    model = models.build(recipe.arch, recipe.size, **recipe.arch_args)
    assert model.input_shape == (None, recipe.size, recipe.size, 1)
    assert model.output_shape == (None, models.NUM_CLASSES)
    assert model.layers[1].name == "scale"  # pixels are scaled inside the graph: int8 input = pixel - 128
    assert models.count_macs(model) > 0
    # The exported twin holds exactly the trained network's weights and batch-norm statistics.
    stats = sum(b.numel() for name, b in net.named_buffers() if "running" in name)
    assert model.count_params() == sum(p.numel() for p in net.parameters()) + stats


def test_xception_extra_blocks_add_depth_not_resolution() -> None:
    plain = models.xception(48, extra=(0, 0, 0))
    deeper = models.xception(48, extra=(0, 1, 2))
    assert deeper.count_params() > plain.count_params()
    assert plain.layers[-4].output.shape[1:3] == deeper.layers[-4].output.shape[1:3] == (3, 3)  # 48 -> 24 (stem) -> 12 -> 6 -> 3


def test_unknown_architecture_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="xception"):
        models.build("alexnet", 48)
