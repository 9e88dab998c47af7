"""Training recipes: what the trainer needs to know about a model family, one module per recipe.

A recipe builds the networks to train, says how clips are sampled and turned into model inputs,
which losses make up the schedule (for GANs: G main, G reg, D main, D reg, each with an interval),
what state changes during training (ADA), and how the trained network becomes a pipeline. The
trainer (:mod:`vgz.training.trainer`) knows nothing model-specific.

    recipe = vgz.create("recipe", "styleganv", preset="tiny", resolution=64)
    recipe.config.r1_gamma_value()      # the official heuristic when r1_gamma is None

Presets: ``paper`` is the official hyper-parameters of the paper's code, ``tiny`` trains in a few
minutes on a CPU. Every field can be overridden (``vgz train --r1-gamma 0.5``).
"""

from __future__ import annotations

from vgz.training.recipes.base import Phase, Recipe, RecipeConfig, copy_generator
from vgz.training.recipes.gan import GANRecipe, GANRecipeConfig
from vgz.training.recipes.psp import PSPRecipe, PSPRecipeConfig
from vgz.training.recipes.stylegan2 import ImageGenerator, StyleGAN2Recipe, StyleGAN2RecipeConfig
from vgz.training.recipes.styleganv import StyleGANVGenerator, StyleGANVRecipe, StyleGANVRecipeConfig
from vgz.training.recipes.styleinv import StyleInVGenerator, StyleInVRecipe, StyleInVRecipeConfig
from vgz.training.recipes.stylevideogan import (StyleVideoGANGenerator, StyleVideoGANRecipe,
                                                StyleVideoGANRecipeConfig)

__all__ = ["Phase", "RecipeConfig", "Recipe", "copy_generator", "GANRecipeConfig", "GANRecipe",
           "StyleGAN2RecipeConfig", "StyleGAN2Recipe", "ImageGenerator", "StyleGANVRecipeConfig", "StyleGANVRecipe",
           "StyleGANVGenerator", "PSPRecipeConfig", "PSPRecipe", "StyleInVRecipeConfig", "StyleInVRecipe",
           "StyleInVGenerator", "StyleVideoGANRecipeConfig", "StyleVideoGANRecipe", "StyleVideoGANGenerator"]
