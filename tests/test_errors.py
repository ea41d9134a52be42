"""Bad input fails at trace time with a ValueError/TypeError naming the argument.

Each case is checked twice: called directly, and traced by ``jax.eval_shape``
(nothing runs, so the error must come from the checks at trace time).
"""

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import PUBLIC_MODULES

import jaxmix

KEY = jax.random.key(0)
X = jnp.zeros((4, 6, 7, 3))
IDS = jnp.arange(4)
METHODS = {"mixup": jaxmix.mixup, "cutmix": jaxmix.cutmix, "mixup_cutmix": jaxmix.mixup_cutmix}
CUT = dict(cutmix_alpha=1.0)  # makes mixup_cutmix a mask method

# (id, callable, exception, message pattern)
CASES = [
  # Inputs.
  ("batch_mismatch", lambda f: f(KEY, (X, jnp.zeros((3, 6, 7)))), ValueError, "batch size"),
  ("bool_inputs", lambda f: f(KEY, X > 0), TypeError, "inputs.*real numeric dtype.*bool"),
  ("complex_inputs", lambda f: f(KEY, X.astype(jnp.complex64)), TypeError, "inputs.*complex"),
  ("scalar_inputs", lambda f: f(KEY, jnp.float32(1.0)), ValueError, "batch axis"),
  # Labels.
  ("labels_batch", lambda f: f(KEY, X, jnp.arange(5), num_classes=5), ValueError, "labels have batch size 5"),
  ("int_labels_no_k", lambda f: f(KEY, X, IDS), ValueError, "num_classes is required"),
  ("float_labels_k", lambda f: f(KEY, X, jnp.eye(4, 3), num_classes=4), ValueError, "labels have 3 classes"),
  ("labels_rank3", lambda f: f(KEY, X, jnp.zeros((4, 2, 3))), ValueError, "labels.*rank 3"),
  ("labels_scalar", lambda f: f(KEY, X, jnp.int32(1), num_classes=3), ValueError, "labels.*rank 0"),
  ("float_ids", lambda f: f(KEY, X, jnp.zeros(4), num_classes=3), TypeError, "labels.*integer class ids"),
  ("int_targets", lambda f: f(KEY, X, np.full((4, 3), 2, np.int32)), ValueError, "labels.*multi-hot.*0/1"),
  ("bool_labels", lambda f: f(KEY, X, IDS > 1, num_classes=3), TypeError, "labels.*bool"),
  # Static choices.
  ("mode", lambda f: f(KEY, X, mode="batches"), ValueError, "mode must be one of"),
  ("pairing", lambda f: f(KEY, X, pairing="shuffle"), ValueError, "pairing must be one of"),
  ("data_format", lambda f: f(KEY, X, data_format="HWC"), ValueError, "data_format must be one of"),
  # Python-number hyperparameters.
  ("negative_alpha", lambda f: f(KEY, X, **_alpha(f, -0.5)), ValueError, "alpha must be >= 0"),
  ("prob_above_one", lambda f: f(KEY, X, prob=1.5), ValueError, "prob must lie in"),
  ("prob_negative", lambda f: f(KEY, X, prob=-0.1), ValueError, "prob must lie in"),
  ("smoothing", lambda f: f(KEY, X, IDS, num_classes=4, label_smoothing=1.2), ValueError, "label_smoothing"),
  # Keys.
  ("int_key", lambda f: f(0, X), TypeError, "key must be a PRNG key"),
  ("float_key", lambda f: f(jnp.zeros(2), X), TypeError, "key must be a PRNG key"),
  ("key_array", lambda f: f(jax.random.split(KEY, 3), X), ValueError, "key must be a single PRNG key"),
]

# Only for methods that mix spatial regions.
MASK_CASES = [
  ("features", lambda f: f(KEY, jnp.zeros((4, 5)), **_cut(f)), ValueError, r"inputs must be \[B, H, W\]"),
  (
    # Rank 5 (videos, volumes) mixes since issue 18 (tests/test_volumes.py); rank 6 has no default axes.
    "rank6",
    lambda f: f(KEY, jnp.zeros((4, 2, 2, 6, 7, 3)), **_cut(f)),
    ValueError,
    r"inputs must be \[B, H, W\]",
  ),
  (
    "spatial_mismatch",
    lambda f: f(KEY, {"image": X, "depth": jnp.zeros((4, 6, 8))}, **_cut(f)),
    ValueError,
    "spatial shape",
  ),
]


def _alpha(f, value):
  return dict(mixup_alpha=value) if f is jaxmix.mixup_cutmix else dict(alpha=value)


def _cut(f):
  return CUT if f is jaxmix.mixup_cutmix else {}


def _assert_raises(fn, exc, match):
  with pytest.raises(exc, match=match):
    fn()
  with pytest.raises(exc, match=match):
    jax.eval_shape(fn)


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, case):
  _, call, exc, match = case
  _assert_raises(lambda: call(METHODS[name]), exc, match)


@pytest.mark.parametrize("name", ["cutmix", "mixup_cutmix"])
@pytest.mark.parametrize("case", MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_bad_input_for_mask_methods(name, case):
  _, call, exc, match = case
  _assert_raises(lambda: call(METHODS[name]), exc, match)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(switch_prob=1.5), "switch_prob must lie in"),
    (dict(switch_prob=-1.0), "switch_prob must lie in"),
    (dict(cutmix_alpha=-1.0), "cutmix_alpha must be >= 0"),
    (dict(mixup_alpha=0.0, cutmix_alpha=0.0), "mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax"),
    (dict(cutmix_minmax=(0.8, 0.2)), "cutmix_minmax"),
  ],
)
def test_bad_mixup_cutmix_options(kwargs, match):
  _assert_raises(lambda: jaxmix.mixup_cutmix(KEY, X, **kwargs), ValueError, match)


def test_bad_plan_layer_input():
  plan = jaxmix.sample_cutmix(KEY, 4, (6, 7))
  _assert_raises(lambda: jaxmix.apply(plan, jnp.zeros((5, 6, 7, 3))), ValueError, "batch size 5")
  _assert_raises(lambda: jaxmix.apply(plan, jnp.zeros((4, 6, 8, 3))), ValueError, "spatial shape")
  _assert_raises(lambda: jaxmix.mix_labels(plan, IDS), ValueError, "num_classes is required")
  _assert_raises(lambda: jaxmix.one_hot(IDS, 0), ValueError, "num_classes must be a positive int")
  _assert_raises(lambda: jaxmix.one_hot(IDS, 4, label_smoothing=2.0), ValueError, "label_smoothing")
  _assert_raises(lambda: jaxmix.one_hot(jnp.zeros(4), 4), TypeError, "integer class ids")
  _assert_raises(lambda: jaxmix.sample_cutmix(KEY, 4, (6,)), ValueError, "spatial_shape must be")
  # Every sampler shares one (H, W) check: empty sides are refused, not turned into NaN λ.
  for sampler in (jaxmix.sample_cutmix, jaxmix.sample_fmix, jaxmix.sample_gridmix, jaxmix.sample_specmix):
    _assert_raises(lambda s=sampler: s(KEY, 4, (0, 5)), ValueError, "positive sizes")
  _assert_raises(
    lambda: jaxmix.sample_mixup_cutmix(KEY, 4, None, cutmix_alpha=1.0), ValueError, "spatial_shape"
  )


def test_numpy_scalars_are_checked_too():
  _assert_raises(lambda: jaxmix.mixup(KEY, X, alpha=np.float32(-1.0)), ValueError, "alpha must be >= 0")
  _assert_raises(lambda: jaxmix.cutmix(KEY, X, prob=np.float64(2.0)), ValueError, "prob must lie in")


def test_traced_hyperparameters_are_not_rejected():
  """Values given as arrays may be traced, so they are taken as given (no host sync)."""
  out, _ = jax.jit(lambda a, p: jaxmix.mixup(KEY, X, alpha=a, prob=p))(0.5, 1.0)
  assert out.shape == X.shape


def test_chex_checks_become_the_public_error_contract():
  """core.validation.check_array runs chex's assertions and re-raises them naming the argument."""
  from jaxmix._src.core import validation

  ok = jnp.ones((4, 5, 6))
  validation.check_array("maps", ok, expected="m", rank=3, batch_size=4, dtype=jnp.floating)
  jax.jit(lambda m: validation.check_array("maps", m, expected="m", rank=3, batch_size=4) or m)(ok)
  cases = [
    (jnp.ones((4, 5)), ValueError, r"shape \(4, 5\)"),
    (jnp.ones((3, 5, 6)), ValueError, r"shape \(3, 5, 6\)"),
    (jnp.ones((4, 5, 6), jnp.int32), TypeError, "dtype int32"),
    (None, TypeError, "NoneType"),
    ({"a": ok}, TypeError, "dict"),
  ]
  for value, error, received in cases:
    with pytest.raises(error, match=f"maps must be float maps \\[B, h, w\\], got .*{received}"):
      validation.check_array(
        "maps", value, expected="float maps [B, h, w]", rank=3, batch_size=4, dtype=jnp.floating
      )
  # Through the public API: SaliencyMix's saliency maps, checked while tracing (nothing runs).
  with pytest.raises(ValueError, match=r"saliency must be \[B, h, w\].*got shape \(4, 6\)"):
    jax.eval_shape(lambda k: jaxmix.sample_saliencymix(k, 4, (6, 7), saliency=jnp.ones((4, 6))), KEY)


# Issue 22 item 3: the fuzz findings, one test each (tests/test_fuzz.py fuzzes all of them).

SAMPLERS_WITH_BATCH_SIZE = sorted(
  {
    getattr(m, n)
    for m in PUBLIC_MODULES
    for n in m.__all__
    if n.startswith("sample_") and "batch_size" in inspect.signature(getattr(m, n)).parameters
  },
  key=lambda f: f.__name__,
)
SAMPLER_DATA = {
  "saliency": jnp.ones((4, 6, 7)),
  "features": jnp.ones((4, 3, 3)),
  "targets": jnp.ones((4, 2)),  # C-Mixup's regression targets
  "methods": ("mixup",),
  "patch_size": 1,  # TokenMix: 16-pixel tokens do not divide 6 × 7
}


def _sampler_data(sampler):
  params = inspect.signature(sampler).parameters
  return {k: v for k, v in SAMPLER_DATA.items() if k in params}


@pytest.mark.parametrize(
  "bad,error",
  [
    (-1, ValueError),
    (2.5, TypeError),
    (True, TypeError),
    ("4", TypeError),
    (None, TypeError),
    (4.0, TypeError),
  ],
  ids=repr,
)
def test_samplers_refuse_a_bad_batch_size(bad, error):
  """Before, -1 gave an empty plan, 2.5 a plan of 2 or 3, True a plan of 1, '4' one of 4 or an
  unrelated TypeError, depending on the sampler; now one check (validation.check_batch_size)."""
  assert len(SAMPLERS_WITH_BATCH_SIZE) >= 19  # every namespace's: guided, regression, flow_mixup too
  for sampler in SAMPLERS_WITH_BATCH_SIZE:
    call = lambda s=sampler: s(KEY, bad, (6, 7), **_sampler_data(s))
    _assert_raises(call, error, f"batch_size must be a static int >= 0.*got {re.escape(repr(bad))}")


def test_samplers_accept_numpy_ints_and_an_empty_batch():
  for sampler in SAMPLERS_WITH_BATCH_SIZE:
    data = _sampler_data(sampler)
    lam = jax.eval_shape(lambda s=sampler, d=data: s(KEY, np.int64(4), (8, 7), **d).lam)
    assert lam.shape == (4,), sampler.__name__
    data = {k: v[:0] if hasattr(v, "shape") else v for k, v in data.items()}
    lam = jax.eval_shape(lambda s=sampler, d=data: s(KEY, 0, (8, 7), **d).lam)
    assert lam.shape == (0,), sampler.__name__


def _label_calls(ids):
  plan = jaxmix.sample_mixup(KEY, 4)
  seq = jaxmix.sequence.sample_mixup(KEY, jnp.ones((4, 3), bool))
  return {
    "cutmix": lambda: jaxmix.cutmix(KEY, X, ids, num_classes=5),
    "mix_labels": lambda: jaxmix.mix_labels(plan, ids, num_classes=5),
    "one_hot": lambda: jaxmix.one_hot(ids, 5),
    "remix_lam": lambda: jaxmix.remix_lam(plan, ids, jnp.ones(5)),
    "mix_token_labels": lambda: jaxmix.sequence.mix_token_labels(
      seq, np.stack([np.asarray(ids)] * 3, axis=1), num_classes=5
    ),
  }


@pytest.mark.parametrize("bad", [-1, 5, 2**31 - 1])
@pytest.mark.parametrize("container", ["list", "numpy", "jax"])
def test_class_ids_out_of_range_are_refused(bad, container):
  """Before, -1, K and 2**31 - 1 one-hot encoded to all-zero rows: soft labels that do not sum to 1."""
  ids = [0, 1, bad, 3]
  ids = {"list": ids, "numpy": np.array(ids), "jax": jnp.array(ids, jnp.int32)}[container]
  for call in _label_calls(ids).values():
    with pytest.raises(
      ValueError, match=rf"labels must be class ids in \[0, num_classes\) = \[0, 5\).*{bad}"
    ):
      call()
    with pytest.raises(ValueError, match="labels must be class ids"):
      jax.eval_shape(call)  # at trace time: the values are constants there


def test_traced_class_ids_are_taken_as_given():
  """Inside jit the ids are not known without a host sync: an id outside [0, K) gives a zero row
  (documented in jaxmix.one_hot)."""
  rows = jax.jit(lambda y: jaxmix.one_hot(y, 3))(jnp.array([0, 3, -1]))
  np.testing.assert_array_equal(rows, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_python_lists_of_labels_work():
  """Before, a list of class ids raised 'Cannot determine dtype' from jnp.result_type."""
  ids = [0, 1, 2, 3]
  for name, call in _label_calls(ids).items():
    want = _label_calls(jnp.array(ids))[name]()
    jax.tree_util.tree_map(np.testing.assert_array_equal, call(), want)
  emb = jnp.ones((4, 3, 2))
  _, _, y = jaxmix.sequence.mixup(KEY, emb, ids, mask=jnp.ones((4, 3), bool), num_classes=5)
  assert y.shape == (4, 5)
  _, y = jaxmix.cutmix(KEY, X, [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
  assert y.shape == (4, 2)


@pytest.mark.parametrize(
  "bad,error", [(True, TypeError), (2.5, TypeError), ("5", TypeError), (0, ValueError)]
)
def test_num_classes_must_be_a_positive_int(bad, error):
  """Before, num_classes=True was taken as K = 1 (a bool is an int), and 2.5 failed in jax.nn.one_hot."""
  maps = jnp.zeros((4, 6, 7), jnp.int32)
  plan = jaxmix.sample_cutmix(KEY, 4, (6, 7))
  calls = [
    lambda: jaxmix.one_hot(IDS, bad),
    lambda: jaxmix.mix_labels(plan, IDS, num_classes=bad),
    lambda: jaxmix.mix_labels(plan, jnp.eye(4, 1), num_classes=bad),  # float labels: K is checked too
    lambda: jaxmix.cutmix(KEY, X, IDS, num_classes=bad),
    lambda: jaxmix.segmentation.classmix(KEY, X, maps, num_classes=bad),
    lambda: jaxmix.segmentation.mix_label_maps(plan, maps, num_classes=bad),
    lambda: jaxmix.mix_batches(KEY, (X, IDS), (X, IDS), num_classes_a=bad, num_classes_b=3),
    lambda: jaxmix.sequence.mixup(KEY, jnp.ones((4, 3, 2)), IDS, mask=jnp.ones((4, 3)), num_classes=bad),
  ]
  for call in calls:
    _assert_raises(call, error, f"num_classes(_a)? must be a positive int.*got {re.escape(repr(bad))}")


def test_remix_refuses_labels_with_an_extra_axis():
  """Before: [B, K, 1] labels failed inside a matmul (or, for K = 1, gave wrong counts)."""
  for k in (3, 1):
    labels = jnp.ones((4, k, 1))
    _assert_raises(
      lambda labels=labels, k=k: jaxmix.remix(KEY, X, labels, class_counts=jnp.ones(k)),
      ValueError,
      rf"labels must be int class ids \[B\] or float targets \[B, K\].*\(4, {k}, 1\)",
    )


@pytest.mark.parametrize("shape", [(4, 0, 7, 3), (4, 6, 0, 3)])
def test_saliencymix_refuses_an_empty_side(shape):
  """Before: 'Cannot apply reflect padding to empty axis' or an XLA verifier error."""
  x = jnp.zeros(shape)
  _assert_raises(lambda: jaxmix.saliencymix(KEY, x), ValueError, r"inputs has the empty spatial shape")
  _assert_raises(lambda: jaxmix.spectral_residual_saliency(x), ValueError, r"images must have H >= 1")
  # Every method that draws regions says so the same way.
  _assert_raises(lambda: jaxmix.cutmix(KEY, x), ValueError, r"inputs has the empty spatial shape")


def test_classmix_with_an_empty_batch_returns_empty_results():
  """Before: ZeroDivisionError from a reshape of zero rows."""
  x, maps = jnp.zeros((0, 6, 7, 3)), jnp.zeros((0, 6, 7), jnp.int32)
  plan = jaxmix.segmentation.sample_classmix(KEY, maps, num_classes=3)
  assert plan.lam.shape == (0,) and plan.mask.shape == (0, 6, 7)
  mixed, mixed_maps = jaxmix.segmentation.classmix(KEY, x, maps, num_classes=3)
  assert mixed.shape == x.shape and mixed_maps.shape == maps.shape and mixed_maps.dtype == maps.dtype
  # An empty side has no pixels to share: refused (λ, the mean of an empty mask, would be NaN).
  _assert_raises(
    lambda: jaxmix.segmentation.classmix(KEY, x[:, :0], maps[:, :0], num_classes=3), ValueError, "label_maps"
  )
