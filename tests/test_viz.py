"""jaxmix.viz: figures have one panel per sample, boxes drawn only when valid, bad input refused."""

import io
import os
import pathlib
import subprocess
import sys

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from core_helpers import examples  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import jaxmix  # noqa: E402
from jaxmix import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
  yield
  plt.close("all")


@pytest.fixture(scope="module")
def digits():
  """Eight real handwritten digits (scikit-learn), upscaled to 16×16 grey uint8 [8, 16, 16]."""
  datasets = pytest.importorskip("sklearn.datasets")
  d = datasets.load_digits()
  x = (d.images[:8] / 16.0 * 255).round().astype(np.uint8)
  return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2), d.target[:8]


@pytest.fixture(scope="module")
def mixed_digits(digits):
  """(plan, mixed, targets, own weight): the digits through timm's per-sample MixUp/CutMix switch."""
  x, labels = digits

  @jax.jit
  def run(x, labels):  # one compiled call: eager JAX is slow on a shared CPU
    plan = jaxmix.sample_mixup_cutmix(
      jax.random.key(2), 8, (16, 16), mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem"
    )
    return plan, jaxmix.apply(plan, x), jaxmix.mix_labels(plan, labels, num_classes=10), plan.own_weight()

  plan, mixed, targets, own = run(jnp.asarray(x), jnp.asarray(labels))
  # Both methods occur, so the overlay is checked on boxes and on even blends.
  assert np.any(np.asarray(plan.blend) < 1) and np.any(np.asarray(plan.region)[:, 1] > 0)
  return plan, mixed, targets, np.asarray(own)


def _rectangles(ax):
  return [p for p in ax.patches if isinstance(p, Rectangle)]


@settings(max_examples=examples(10), deadline=None)
@given(batch=st.integers(1, 11), ncols=st.one_of(st.none(), st.integers(1, 6)))
def test_one_axes_per_sample(digits, batch, ncols):
  x = np.resize(digits[0], (batch, 16, 16))
  fig = viz.show_batch(x, ncols=ncols)
  assert len(fig.axes) == batch
  rows = {round(ax.get_position().y0, 4) for ax in fig.axes}
  assert len(rows) == -(-batch // (ncols or min(batch, 8)))
  plt.close(fig)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, jnp.bfloat16])
def test_formats_and_dtypes(digits, data_format, dtype):
  grey = digits[0][:4]
  rgb = np.stack([grey, 255 - grey, grey // 2], axis=-1)
  x = rgb if dtype == np.uint8 else (rgb / 255.0).astype(np.float32)
  if data_format == "NCHW":
    x = np.moveaxis(x, -1, 1)
  x = jnp.asarray(x, dtype)
  fig = viz.show_batch(x, data_format=data_format)
  assert len(fig.axes) == 4
  shown = fig.axes[2].images[0].get_array()
  assert shown.shape == (16, 16, 3)
  scale = 255.0 if dtype == np.uint8 else 1.0
  np.testing.assert_allclose(np.asarray(shown, np.float32) / scale, rgb[2] / 255.0, atol=1 / 128)


def test_bool_and_int_images(digits):
  x = digits[0][:2]
  shown = np.asarray(viz.show_batch(x > 128).axes[0].images[0].get_array())
  np.testing.assert_array_equal(shown, (x[0] > 128).astype(np.float32))
  shown = np.asarray(viz.show_batch(x.astype(np.int32) * 2).axes[0].images[0].get_array())
  np.testing.assert_array_equal(shown, np.clip(x[0].astype(np.int32) * 2, 0, 255))


def test_float_images_are_clipped(digits):
  x = digits[0][:2].astype(np.float32) / 255.0 * 3 - 1  # values in [-1, 2]
  fig = viz.show_batch(x)
  shown = np.asarray(fig.axes[0].images[0].get_array())
  assert shown.min() >= 0.0 and shown.max() <= 1.0
  np.testing.assert_allclose(shown, np.clip(x[0], 0, 1))


def test_top_k_labels_written_under_images(digits, mixed_digits):
  labels = digits[1]
  names = [f"digit{j}" for j in range(10)]
  plan, mixed, targets, _ = mixed_digits
  fig = viz.show_batch(mixed, targets, class_names=names, top_k=2, plan=plan, show_partner=True)
  lam = np.asarray(plan.lam)
  index = np.asarray(plan.index)
  for i, ax in enumerate(fig.axes):
    lines = ax.get_xlabel().split("\n")
    own = f"digit{labels[i]}"
    partner = f"digit{labels[index[i]]}"
    assert 1 <= len(lines) <= 2
    assert any(line.startswith(own) for line in lines)
    if labels[i] != labels[index[i]] and 1e-3 < lam[i] < 1 - 1e-3:
      assert any(line.startswith(partner) for line in lines)
    assert f"#{index[i]}" in ax.get_title() and f"λ={lam[i]:.2f}" in ax.get_title()


def test_top_k_limits_entries():
  y = np.array([[0.1, 0.5, 0.2, 0.2], [0.0, 0.0, 1.0, 0.0]], np.float32)
  img = np.zeros((2, 4, 4), np.uint8) + np.array([10, 200], np.uint8)[:, None, None]
  fig = viz.show_batch(img, y, class_names=list("abcd"), top_k=3)
  assert fig.axes[0].get_xlabel().split("\n") == ["b 0.50", "c 0.20", "d 0.20"]
  assert fig.axes[1].get_xlabel() == "c 1.00"  # zero entries are not written


def test_int_labels_without_names(digits):
  x, labels = digits
  fig = viz.show_batch(x[:3], jnp.asarray(labels[:3]))
  assert [ax.get_xlabel() for ax in fig.axes] == [f"class {j}" for j in labels[:3]]


def test_mask_overlay_follows_own_weight(mixed_digits):
  plan, mixed, _, own = mixed_digits
  fig = viz.show_batch(mixed, plan=plan, show_mask=True)
  own = np.broadcast_to(own, (8, 16, 16))
  for i, ax in enumerate(fig.axes):
    assert len(ax.images) == 2
    alpha = np.asarray(ax.images[1].get_array())[..., 3]
    np.testing.assert_array_equal(alpha > 0, own[i] < 1)
    np.testing.assert_allclose(alpha, 0.55 * (1 - own[i]), atol=1e-6)


def test_plan_without_own_weight_is_handled(digits):
  class LamOnly:
    lam = jnp.full((8,), 0.7)

  with pytest.warns(UserWarning, match="own_weight"):
    fig = viz.show_batch(digits[0], plan=LamOnly(), show_mask=True)
  with pytest.warns(UserWarning, match="index"):
    fig = viz.show_batch(digits[0], plan=LamOnly(), show_partner=True)
  assert len(fig.axes) == 8
  assert all(len(ax.images) == 1 for ax in fig.axes)


def test_k_way_partners_from_indices(digits):
  class KWay:  # like a k-way plan: sources per slot, slot 0 the sample itself
    lam = jnp.full((8,), 0.5)
    indices = jnp.stack([jnp.arange(8), jnp.roll(jnp.arange(8), 1), jnp.roll(jnp.arange(8), 2)], axis=1)

  fig = viz.show_batch(digits[0], plan=KWay(), show_partner=True)
  assert fig.axes[0].get_title() == "#0 + #7,#6  λ=0.50"
  assert fig.axes[3].get_title() == "#3 + #2,#1  λ=0.50"


@pytest.mark.parametrize("box_format", ["xyxy", "xywh", "cxcywh", "yxyx"])
def test_draws_only_valid_boxes(digits, box_format):
  x, _ = digits
  rng = np.random.default_rng(0)
  n = 5
  x0y0 = rng.uniform(0, 8, (8, n, 2))
  wh = rng.uniform(1, 8, (8, n, 2))
  valid = rng.random((8, n)) < 0.6
  xyxy = np.concatenate([x0y0, x0y0 + wh], -1)
  boxes = {
    "xyxy": xyxy,
    "xywh": np.concatenate([x0y0, wh], -1),
    "cxcywh": np.concatenate([x0y0 + wh / 2, wh], -1),
    "yxyx": xyxy[..., [1, 0, 3, 2]],
  }[box_format]
  fig = viz.show_batch(x, boxes=boxes, box_format=box_format, valid=valid)
  for i, ax in enumerate(fig.axes):
    rects = _rectangles(ax)
    assert len(rects) == valid[i].sum()
    got = sorted((r.get_x() + 0.5, r.get_y() + 0.5, r.get_width(), r.get_height()) for r in rects)
    want = sorted((*xyxy[i, k, :2], *wh[i, k]) for k in np.flatnonzero(valid[i]))
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_padding_boxes_skipped_and_normalized(digits):
  x, _ = digits
  boxes = np.zeros((8, 3, 4))
  boxes[:, 0] = [0.25, 0.5, 0.75, 1.0]  # normalised xyxy; rows 1-2 are zero padding
  fig = viz.show_batch(x, boxes=boxes, normalized=True, box_classes=np.ones((8, 3), int))
  for ax in fig.axes:
    (rect,) = _rectangles(ax)
    assert (rect.get_x() + 0.5, rect.get_y() + 0.5, rect.get_width(), rect.get_height()) == (4, 8, 8, 8)
    assert [t.get_text() for t in ax.texts] == ["1"]


def test_detection_targets_object_is_unpacked(digits):
  class Targets:  # like jaxmix's mixed detection targets: padded boxes, classes, valid, weights
    boxes = np.tile(np.array([[1.0, 2.0, 9.0, 12.0], [3.0, 3.0, 6.0, 6.0], [0.0, 0.0, 5.0, 5.0]]), (8, 1, 1))
    classes = np.tile(np.array([4, 2, 7]), (8, 1))
    valid = np.tile(np.array([True, True, False]), (8, 1))
    weights = np.tile(np.array([0.7, 0.3, 0.0], np.float32), (8, 1))

  names = [f"c{j}" for j in range(10)]
  fig = viz.show_batch(digits[0], boxes=Targets(), class_names=names)
  for ax in fig.axes:
    rects = _rectangles(ax)
    assert len(rects) == 2  # the invalid third box is not drawn
    assert [t.get_text() for t in ax.texts] == ["c4 0.70", "c2 0.30"]
    assert rects[0].get_alpha() > rects[1].get_alpha()


def test_bad_input_is_refused(digits):
  x, labels = digits
  with pytest.raises(ValueError, match="images must be a batch"):
    viz.show_batch(x[0, 0])
  with pytest.raises(ValueError, match="images must be a batch"):
    viz.show_batch(x[None, ..., None])
  with pytest.raises(ValueError, match="channels"):
    viz.show_batch(np.zeros((2, 8, 8, 5), np.uint8))
  with pytest.raises(ValueError, match="data_format"):
    viz.show_batch(x, data_format="HWC")
  with pytest.raises(ValueError, match="soft_labels has batch size 7"):
    viz.show_batch(x, np.eye(10)[labels[:7]])
  with pytest.raises(ValueError, match="class_names has 3 names"):
    viz.show_batch(x, np.eye(10)[labels], class_names=["a", "b", "c"])
  with pytest.raises(ValueError, match="boxes must be padded"):
    viz.show_batch(x, boxes=np.zeros((8, 4)))
  with pytest.raises(ValueError, match="boxes must be padded"):
    viz.show_batch(x, boxes=np.zeros((8, 2, 5)))
  with pytest.raises(ValueError, match="boxes has batch size"):
    viz.show_batch(x, boxes=np.zeros((3, 2, 4)))
  with pytest.raises(ValueError, match="valid must be"):
    viz.show_batch(x, boxes=np.zeros((8, 2, 4)), valid=np.ones((8, 3), bool))
  with pytest.raises(ValueError, match="box_weights must be"):
    viz.show_batch(x, boxes=np.zeros((8, 2, 4)), box_weights=np.ones((8,)))
  with pytest.raises(ValueError, match="need `boxes`"):
    viz.show_batch(x, valid=np.ones((8, 2), bool))
  with pytest.raises(ValueError, match="box_format"):
    viz.show_batch(x, boxes=np.zeros((8, 2, 4)), box_format="ltrb")
  with pytest.raises(ValueError, match="need the `plan`"):
    viz.show_batch(x, show_mask=True)
  with pytest.raises(ValueError, match="plan was sampled for batch size 4"):
    viz.show_batch(x, plan=jaxmix.Plan(lam=jnp.ones(4), index=jnp.arange(4), blend=jnp.ones(4)))
  with pytest.raises(ValueError, match="top_k"):
    viz.show_batch(x, top_k=0)


def test_rendered_grid_is_not_blank(mixed_digits):
  plan, mixed, targets, _ = mixed_digits
  fig = viz.show_batch(mixed, targets, plan=plan, show_partner=True, show_mask=True)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=60)
  buf.seek(0)
  png = plt.imread(buf)[..., :3]
  assert png.std() > 0.05
  background = np.all(png > 0.99, axis=-1)  # the white figure face
  assert 0.1 < 1 - background.mean() < 0.95


def test_draw_lambdas_vmaps_the_sampler_over_keys():
  fn = lambda k: jax.random.uniform(k, (3,))
  lam = viz.draw_lambdas(fn, num_draws=10, key=jax.random.key(5), chunk_size=4)
  keys = jax.random.split(jax.random.key(5), 10)
  np.testing.assert_allclose(lam, np.concatenate([fn(k) for k in keys]), rtol=1e-6)  # padding trimmed


def test_plot_lambda_matches_the_sampler():
  fn = lambda k: jaxmix.sample_mixup(k, 4, alpha=0.3, mode="elem")
  lam = viz.draw_lambdas(fn, num_draws=300, key=jax.random.key(5), chunk_size=128)
  assert lam.shape == (1200,)
  fig = viz.plot_lambda(lam, bins=10)
  (ax,) = fig.axes
  heights = np.array([p.get_height() for p in _rectangles(ax)])
  assert heights.shape == (10,)
  np.testing.assert_allclose(heights, np.histogram(lam, bins=10, range=(0, 1), density=True)[0], rtol=1e-5)
  # α = 0.3 is U-shaped: the outer bins hold more than the middle ones.
  assert heights[[0, -1]].min() > heights[4:6].max()


def test_plot_lambda_overlay_and_arrays():
  fig = viz.plot_lambda({"a": np.linspace(0, 1, 50), "b": jnp.full((20,), 0.5)}, bins=5, title="t")
  (ax,) = fig.axes
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (mean 0.50)", "b (mean 0.50)"]
  assert len(_rectangles(ax)) == 10
  fig = viz.plot_lambda(lambda k: jax.random.uniform(k, (2,)), num_draws=20)
  assert len(_rectangles(fig.axes[0])) == 40
  _, other = plt.subplots()
  assert viz.plot_lambda(np.array([0.2, 0.8]), ax=other) is other.figure
  with pytest.raises(ValueError, match="num_draws"):
    viz.draw_lambdas(lambda k: jaxmix.sample_mixup(k, 2), num_draws=0)
  with pytest.raises(ValueError, match="no λ"):
    viz.plot_lambda(np.array([]))
  with pytest.raises(ValueError, match="empty"):
    viz.plot_lambda({})


def test_import_jaxmix_does_not_import_matplotlib():
  code = "import sys, jaxmix; from jaxmix import viz; assert 'matplotlib' not in sys.modules, 'imported'"
  root = pathlib.Path(__file__).resolve().parents[1]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
  subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_k_way_plan_mask_overlay_is_skipped_with_a_warning(digits):
  # A MultiPlan implements PlanLike but has no single partner, so no own-content weight.
  plan = jaxmix.sample_multimix(jax.random.key(0), 8, k=3)
  with pytest.warns(UserWarning, match="own_weight"):
    fig = viz.show_batch(jaxmix.apply(plan, digits[0]), plan=plan, show_mask=True)
  assert len(fig.axes) == 8
