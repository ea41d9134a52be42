"""The public API: a walk over every public namespace, and the one-call contract of the core methods.

Conventions, checked structurally for every name each namespace exports (so names added later are
checked without touching this file, and nothing is allow-listed):

* each namespace's ``__all__`` is unique and complete: every public attribute is in it (submodules
  aside) and every name in it resolves;
* every public function has a docstring with ``Args:`` and ``Returns:``, every class a docstring;
* a function that takes a PRNG ``key`` takes it first; its data arguments follow, positional, with at
  most one optional data argument (``labels``, ``spatial_shape``, ``valid``) last; every option is
  keyword-only; no ``*args``;
* ``jaxmix.__all__`` has at most 50 names; the names that moved into the family namespaces still
  resolve at the top level for one release, to the same objects, with a DeprecationWarning.

The contract of every registered method is in ``test_contract.py``; the tests below keep the one-call
specifics (labels, label smoothing, the empty batch) of MixUp, CutMix and timm's switch.
"""

import inspect
import types
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import CANON
from core_helpers import METHODS
from core_helpers import PUBLIC_MODULES
from core_helpers import call
from core_helpers import method
from core_helpers import method_and_plan
from core_helpers import random_images
from core_helpers import reference_mix

import jaxmix
import jaxmix.viz

NAMESPACES = PUBLIC_MODULES
PUBLIC = [(ns, name) for ns in NAMESPACES for name in ns.__all__]
FUNCTIONS = [(ns, n) for ns, n in PUBLIC if inspect.isfunction(getattr(ns, n))]


def _id(item):
  ns, name = item
  return f"{ns.__name__}.{name}"


@pytest.mark.parametrize("ns", NAMESPACES, ids=lambda ns: ns.__name__)
def test_all_is_unique_and_complete(ns):
  assert len(set(ns.__all__)) == len(ns.__all__)
  for name in ns.__all__:
    assert getattr(ns, name) is not None, name
  public = {n for n in vars(ns) if not n.startswith("_") and not isinstance(getattr(ns, n), types.ModuleType)}
  assert public == set(ns.__all__), sorted(public ^ set(ns.__all__))


def test_top_level_is_small_and_has_a_version():
  assert isinstance(jaxmix.__version__, str) and jaxmix.__version__
  assert len(jaxmix.__all__) <= 50, len(jaxmix.__all__)
  assert set(METHODS) <= set(jaxmix.__all__)


def test_moved_names_warn_and_resolve_to_the_new_objects():
  assert jaxmix._MOVED, "no deprecation aliases left: delete this test with them"
  for old, (namespace, new) in jaxmix._MOVED.items():
    assert old not in jaxmix.__all__
    with pytest.warns(DeprecationWarning, match=f"jaxmix.{namespace}.{new}"):
      obj = getattr(jaxmix, old)
    assert obj is getattr(getattr(jaxmix, namespace), new), old
  with pytest.raises(AttributeError, match="no_such_name"):
    jaxmix.no_such_name  # noqa: B018
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for name in jaxmix.__all__:
      getattr(jaxmix, name)  # current names never warn


@pytest.mark.parametrize("item", FUNCTIONS, ids=_id)
def test_docstring_has_args_and_returns(item):
  ns, name = item
  doc = inspect.getdoc(getattr(ns, name)) or ""
  assert "Args:" in doc and "Returns:" in doc, name


@pytest.mark.parametrize("item", [i for i in PUBLIC if inspect.isclass(getattr(*i))], ids=_id)
def test_classes_are_documented(item):
  assert inspect.getdoc(getattr(*item))


@pytest.mark.parametrize(
  "item", [i for i in FUNCTIONS if "key" in inspect.signature(getattr(*i)).parameters], ids=_id
)
def test_key_first_data_positional_options_keyword_only(item):
  ns, name = item
  params = list(inspect.signature(getattr(ns, name)).parameters.values())
  assert params[0].name == "key", f"{name}: `key` must be the first parameter"
  assert all(p.kind is not inspect.Parameter.VAR_POSITIONAL for p in params), f"{name}: no *args"
  positional = [p for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
  optional = [p.name for p in positional if p.default is not inspect.Parameter.empty]
  assert len(optional) <= 1, f"{name}: options {optional} must be keyword-only"
  assert not optional or positional[-1].name == optional[0], f"{name}: `{optional[0]}` must come last"


# --- one-call specifics of the core methods ---------------------------------------------------------

# mixup_cutmix can cut, so all three take image batches here.
OPTS = {"mixup": {}, "cutmix": {}, "mixup_cutmix": dict(cutmix_alpha=1.0)}


def _mix(name, key, x, labels=None, **kwargs):
  return method(name)(key, x, labels, **OPTS[name], **kwargs)


def test_no_retrace_when_traced_hyperparameters_change():
  x, labels = random_images(0, CANON), jnp.arange(6)
  traces = {"n": 0}

  def f(key, mixup_alpha, cutmix_alpha, prob, switch_prob, label_smoothing):
    traces["n"] += 1
    return jaxmix.mixup_cutmix(
      key,
      x,
      labels,
      mixup_alpha=mixup_alpha,
      cutmix_alpha=cutmix_alpha,
      prob=prob,
      switch_prob=switch_prob,
      label_smoothing=label_smoothing,
      num_classes=6,
    )

  g = jax.jit(f)
  for i, values in enumerate(
    [(1.0, 0.0, 1.0, 0.5, 0.0), (0.2, 1.0, 0.5, 0.0, 0.1), (0.0, 2.0, 0.0, 1.0, 0.3)]
  ):
    g(jax.random.key(i), *values)
  assert traces["n"] == 1


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_no_retrace_alpha_prob_smoothing(name):
  x, labels = random_images(0, CANON), jnp.arange(6)
  chex.clear_trace_counter()  # the counter is keyed by code location, shared by both parameters

  @chex.assert_max_traces(n=1)
  def f(key, alpha, prob, label_smoothing):
    return method(name)(
      key, x, labels, alpha=alpha, prob=prob, label_smoothing=label_smoothing, num_classes=6
    )

  g = jax.jit(f)
  for i, values in enumerate([(1.0, 1.0, 0.0), (0.3, 0.5, 0.1), (0.0, 0.0, 0.2)]):
    g(jax.random.key(i), *values)


@pytest.mark.parametrize("name", METHODS)
def test_uint8_rounds_and_clips(name):
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, CANON), jnp.uint8)
  out, _, plan = method_and_plan(jax.random.key(7), x, name=name, mode="elem", **OPTS[name])
  expected = np.clip(np.round(reference_mix(plan, np.asarray(x, np.float64))), 0, 255)
  assert np.abs(np.asarray(out, np.int32) - expected).max() <= 1  # float32 vs float64 at .5 ties
  assert out.dtype == jnp.uint8


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("use_jit", [False, True])
def test_batch_of_one_and_empty_batch(name, use_jit):
  for b in (1, 0):
    x = random_images(10, (b, 5, 4, 3))
    out, y, plan = call(
      method_and_plan,
      use_jit,
      jax.random.key(1),
      x,
      jnp.zeros(b, jnp.int32),
      name=name,
      num_classes=3,
      label_smoothing=0.3,
      cheap=True,
      **OPTS[name],
    )
    assert out.shape == x.shape and y.shape == (b, 3)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_allclose(y, jaxmix.one_hot(jnp.zeros(b, jnp.int32), 3, label_smoothing=0.3), atol=1e-7)


@pytest.mark.parametrize("name", METHODS)
def test_labels_none(name):
  out, y = _mix(name, jax.random.key(0), random_images(0, CANON))
  assert y is None and out.shape == CANON


def test_plan_layer_equals_one_call():
  x, labels = random_images(0, CANON), jnp.arange(6)
  key = jax.random.key(12)
  plan = jaxmix.sample_cutmix(key, 6, CANON[1:3], mode="elem")
  out, y = jaxmix.cutmix(key, x, labels, num_classes=6, mode="elem")
  np.testing.assert_array_equal(jaxmix.apply(plan, x), out)
  np.testing.assert_array_equal(jaxmix.mix_labels(plan, labels, num_classes=6), y)
