"""Renamed keywords and attributes: the old spelling works for one release, warns, and means the new one.

Every rename in CHANGELOG.md's table is a row of :data:`KEYWORDS` (or an attribute test below): with the
same key, the old spelling gives bit-identical output to the new one and a DeprecationWarning naming the
new keyword; passing both is a TypeError naming both.
"""

import dataclasses
import functools
import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix

KEY = jax.random.key(3)
B, H, W = 6, 16, 12

# (function name, old keyword, new keyword, value) for every renamed keyword. The sampler and the
# one-call form of a method share their options, so both are listed.
KEYWORDS = [
  ("sample_gridmix", "p", "cell_prob", 0.3),
  ("gridmix", "p", "cell_prob", 0.3),
  ("sample_resizemix", "scope", "scale_range", (0.2, 0.6)),
  ("resizemix", "scope", "scale_range", (0.2, 0.6)),
  ("sample_resizemix", "method", "interpolation", "bilinear"),
  ("resizemix", "method", "interpolation", "bilinear"),
  ("sample_smoothmix", "sigma", "sigma_range", (0.1, 0.3)),
  ("smoothmix", "sigma", "sigma_range", (0.1, 0.3)),
  ("one_hot", "smoothing", "label_smoothing", 0.2),
]


def _images():
  return jax.random.uniform(jax.random.key(1), (B, H, W, 3))


def _call(name, **option):
  """Calls `jaxmix.<name>` with `option` (mode="elem" where the function has a mode)."""
  fn = getattr(jaxmix, name)
  if name == "one_hot":
    return fn(jnp.arange(B) % 4, 4, **option)
  if name.startswith("sample_"):
    return fn(KEY, B, (H, W), mode="elem", **option)
  return fn(KEY, _images(), jnp.arange(B), num_classes=B, mode="elem", **option)


def _assert_same(a, b):
  leaves_a, tree_a = jax.tree_util.tree_flatten(a)
  leaves_b, tree_b = jax.tree_util.tree_flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name, old, new, value", KEYWORDS, ids=lambda v: str(v))
def test_old_keyword_warns_and_matches_the_new(name, old, new, value):
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # the new spelling never warns
    expected = _call(name, **{new: value})
  with pytest.warns(DeprecationWarning, match=rf"{name}\({old}=\.\.\.\) is deprecated; use {new}=") as rec:
    got = _call(name, **{old: value})
  assert rec[0].filename == __file__  # the warning points at the caller's line
  _assert_same(got, expected)


@pytest.mark.parametrize("name, old, new, value", KEYWORDS, ids=lambda v: str(v))
def test_old_and_new_keyword_together_is_a_type_error(name, old, new, value):
  with pytest.raises(TypeError, match=rf"{name}\(\) got both {old}= .* and {new}="):
    _call(name, **{old: value, new: value})


@pytest.mark.parametrize("name, old, new, value", KEYWORDS, ids=lambda v: str(v))
def test_signatures_show_only_the_new_spelling(name, old, new, value):
  params = inspect.signature(getattr(jaxmix, name)).parameters
  assert new in params and old not in params


def test_old_keyword_through_choose_warns_the_same_way():
  """choose passes a partial's options through to the sampler, old spellings included."""
  new = functools.partial(jaxmix.sample_gridmix, cell_prob=0.7)
  old = functools.partial(jaxmix.sample_gridmix, p=0.7)
  expected = jaxmix.choose(KEY, _images(), methods=(new, "mixup"), mode="elem")[0]
  with pytest.warns(DeprecationWarning, match=r"sample_gridmix\(p=\.\.\.\) is deprecated; use cell_prob="):
    got = jaxmix.choose(KEY, _images(), methods=(old, "mixup"), mode="elem")[0]
  np.testing.assert_array_equal(got, expected)


def test_old_keyword_through_mix_batches_and_with_plan_transform_warns():
  """Options given to mix_batches and to with_plan_transform's one-call reach the sampler as they are."""
  x = _images()
  a, b = (x, jnp.arange(B) % 3), (x[::-1], jnp.arange(B) % 3)
  sample = jaxmix.sample_smoothmix
  expected = jaxmix.mix_batches(
    KEY, a, b, method=sample, num_classes_a=3, num_classes_b=3, sigma_range=(0.1, 0.2)
  )
  with pytest.warns(DeprecationWarning, match="use sigma_range="):
    got = jaxmix.mix_batches(KEY, a, b, method=sample, num_classes_a=3, num_classes_b=3, sigma=(0.1, 0.2))
  _assert_same(got, expected)
  mix = jaxmix.with_plan_transform(jaxmix.sample_resizemix, lambda plan: plan)
  expected = mix(KEY, x, jnp.arange(B), num_classes=B, scale_range=(0.3, 0.5))
  with pytest.warns(DeprecationWarning, match="use scale_range="):
    got = mix(KEY, x, jnp.arange(B), num_classes=B, scope=(0.3, 0.5))
  _assert_same(got, expected)


@pytest.mark.parametrize("name", ["sample_cutmix", "sample_mixup_cutmix", "sample_saliencymix"])
def test_plan_box_warns_and_equals_region(name):
  saliency = jax.random.uniform(jax.random.key(2), (B, H, W))
  options = {"sample_mixup_cutmix": dict(cutmix_alpha=1.0), "sample_saliencymix": dict(saliency=saliency)}
  options = options.get(name, {})
  plan = getattr(jaxmix, name)(KEY, B, (H, W), mode="elem", **options)
  assert plan.region is not None and plan.region.shape == (B, 4)
  with pytest.warns(DeprecationWarning, match=r"Plan\.box is deprecated; use \.region"):
    box = plan.box
  np.testing.assert_array_equal(box, plan.region)


def test_plan_box_of_a_blend_plan_is_none():
  plan = jaxmix.sample_mixup(KEY, B)
  with pytest.warns(DeprecationWarning, match="use .region"):
    assert plan.box is None
  assert "box" not in {f.name for f in dataclasses.fields(plan)}


def test_resizemix_plan_box_and_method_warn():
  plan = jaxmix.sample_resizemix(KEY, B, (H, W), mode="elem", interpolation="bilinear")
  with pytest.warns(DeprecationWarning, match=r"ResizeMixPlan\.box is deprecated; use \.region"):
    np.testing.assert_array_equal(plan.box, plan.region)
  with pytest.warns(DeprecationWarning, match=r"ResizeMixPlan\.method is deprecated; use \.interpolation"):
    assert plan.method == plan.interpolation == "bilinear"
