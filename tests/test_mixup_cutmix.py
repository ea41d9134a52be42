"""timm's MixUp/CutMix switch: switch_prob, prob, per-sample choice, smoothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import CANON
from core_helpers import box_area
from core_helpers import call
from core_helpers import constant_images
from core_helpers import method_and_plan
from core_helpers import random_images
from core_helpers import reference_mix

import jaxmix

BOTH = dict(mixup_alpha=0.8, cutmix_alpha=1.0)


def _run(use_jit, x, labels=None, key=0, **kwargs):
  """mixup_cutmix and its plan; labels default to arange(B) so jitted programs are shared."""
  kwargs.setdefault("num_classes", x.shape[0])
  if labels is None:
    labels = jnp.arange(x.shape[0])
  return call(method_and_plan, use_jit, jax.random.key(key), x, labels, name="mixup_cutmix", **kwargs)


@pytest.mark.parametrize("use_jit", [False, True])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_switch_prob_picks_the_method(use_jit, mode):
  b, h, w, c = CANON
  x = random_images(2, CANON)
  for key in range(3):
    # switch_prob = 0: always MixUp, no box anywhere.
    out, _, plan = _run(use_jit, x, key=key, mode=mode, switch_prob=0.0, **BOTH)
    assert np.all(box_area(plan.region) == 0)
    np.testing.assert_allclose(plan.blend, plan.lam)
    assert np.all(np.asarray(plan.lam) < 1)
    np.testing.assert_allclose(out, reference_mix(plan, x), rtol=1e-5, atol=1e-5)
    # switch_prob = 1: always CutMix, λ the exact pixel share.
    cx = constant_images(b, h, w, c)
    out, _, plan = _run(use_jit, cx, key=key, mode=mode, switch_prob=1.0, **BOTH)
    np.testing.assert_array_equal(plan.blend, 1.0)
    own = np.asarray(out)[..., 0] == np.arange(1, b + 1)[:, None, None]
    np.testing.assert_allclose(plan.lam, own.reshape(b, -1).mean(-1), atol=1e-6)
    np.testing.assert_allclose(out, reference_mix(plan, cx))


@pytest.mark.parametrize("use_jit", [False, True])
def test_prob_zero_leaves_inputs_and_smooths_labels(use_jit):
  x = random_images(3, CANON)
  labels = jnp.array([0, 1, 2, 3, 4, 5])
  out, y, plan = _run(use_jit, x, labels, mode="elem", prob=0.0, label_smoothing=0.1, **BOTH)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_allclose(y, jaxmix.one_hot(labels, 6, label_smoothing=0.1), atol=1e-7)
  np.testing.assert_array_equal(plan.lam, 1.0)


def test_elem_mode_chooses_per_sample():
  x = random_images(4, (48, 5, 6, 1))
  out, _, plan = _run(True, x, mode="elem", switch_prob=0.5, cheap=True, **BOTH)
  boxed = box_area(plan.region) > 0
  blended = np.asarray(plan.blend) < 1
  assert boxed.any() and blended.any()
  assert not np.any(boxed & blended)  # each sample is MixUp or CutMix, not both
  np.testing.assert_allclose(out, reference_mix(plan, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_jit", [False, True])
def test_label_smoothing_before_mixing_matches_timm(use_jit):
  """timm: off = s/K, on = 1 - s + off; y = λ·one_hot(t) + (1 - λ)·one_hot(t.flip(0))."""
  b, k, s = 6, 6, 0.1
  x = random_images(5, CANON)
  target = np.array([3, 1, 4, 1, 5, 0])
  for switch_prob in (0.0, 1.0):
    _, y, plan = _run(
      use_jit,
      x,
      jnp.asarray(target),
      mode="batch",
      num_classes=k,
      label_smoothing=s,
      switch_prob=switch_prob,
      **BOTH,
    )
    lam = float(np.asarray(plan.lam)[0])  # batch mode, flip: one λ
    off = s / k
    on = 1.0 - s + off
    y1 = np.full((b, k), off)
    y1[np.arange(b), target] = on
    y2 = y1[::-1]
    np.testing.assert_allclose(y, y1 * lam + y2 * (1.0 - lam), atol=1e-6)
    assert lam < 1


@pytest.mark.parametrize("use_jit", [False, True])
def test_cutmix_minmax_cuts_with_cutmix_alpha_zero(use_jit):
  b, h, w, c = CANON
  x = constant_images(b, h, w, c)
  out, _, plan = _run(
    use_jit,
    x,
    mode="elem",
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    cutmix_minmax=(0.4, 0.8),
    static=("mixup_alpha",),
  )
  sides_h = np.asarray(plan.region)[:, 1] - np.asarray(plan.region)[:, 0]
  assert np.all((2 <= sides_h) & (sides_h <= 0.8 * h))
  assert np.all(np.asarray(plan.lam) < 1)
  np.testing.assert_array_equal(plan.blend, 1.0)
  own = np.asarray(out)[..., 0] == np.arange(1, b + 1)[:, None, None]
  np.testing.assert_allclose(plan.lam, own.reshape(b, -1).mean(-1), atol=1e-6)


def test_traced_alphas_both_zero_do_not_mix():
  x = random_images(6, CANON)
  out, y, plan = _run(True, x, jnp.arange(6), mode="batch", mixup_alpha=0.0, cutmix_alpha=0.0)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_array_equal(plan.lam, 1.0)
  np.testing.assert_allclose(y, np.eye(6))


def test_single_method_when_other_alpha_is_zero():
  x = random_images(7, CANON)
  _, _, plan = _run(False, x, mode="elem", mixup_alpha=0.0, cutmix_alpha=1.0)
  np.testing.assert_array_equal(plan.blend, 1.0)  # only CutMix
  _, _, plan = _run(False, x, mode="elem", mixup_alpha=1.0, cutmix_alpha=0.0)
  assert plan.region is None  # CutMix statically off: a pure blend plan
  assert np.all(np.asarray(plan.lam) < 1)
