"""The recipes shipped in recipes/ stay valid: every section maps onto real settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from earmark.audio import AudioConfig
from earmark.cli import _recipe
from earmark.features import FeatureConfig
from earmark.models import registry
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert {p.stem for p in RECIPES} >= {"cnn", "crnn", "svm"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_sections_are_valid_settings(path: Path) -> None:
    recipe = _recipe(path)
    spec = registry.get(recipe["model"])
    FeatureConfig.from_dict({**spec.default_features, **recipe.get("features", {})})
    AudioConfig.from_dict(recipe.get("audio", {}))
    TrainConfig.from_dict(recipe.get("train", {}))
    SplitSettings.from_dict(recipe.get("split", {}))
    assert set(recipe.get("params", {})) <= set(spec.defaults)
