"""The recipes shipped in recipes/ stay valid: every section maps onto real, typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from earmark.models import registry
from earmark.settings import read_recipe, train_settings

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert {p.stem for p in RECIPES} >= {"cnn", "crnn", "svm"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_sections_are_valid_settings(path: Path) -> None:
    recipe = read_recipe(path)
    settings = train_settings(recipe)  # every key known, every value of its type
    spec = registry.get(recipe["model"])
    assert settings.model == spec.name
    assert set(recipe.get("params", {})) <= set(spec.defaults)
    assert (settings.train is not None) == (spec.family == "neural")
    for key, value in recipe.get("train", {}).items():
        assert getattr(settings.train, key) == value
