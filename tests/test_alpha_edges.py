"""Every public call that draws λ returns for every traced α, with the documented edge results.

The edges, the same for every method (:mod:`jaxmix._src.core.sampling`):

* α ≤ 0 or NaN (here 0, −1, NaN): no mixing, λ = 1, the output is the input;
* a tiny α > 0 (1e-30): λ ∈ {0, 1}, the limit α → 0;
* a huge α (1e30, +inf): λ = 0.5 (1/k for a k-way Dirichlet), the limit α → ∞.

A draw loop without a bound never returns at α = +inf, and no signal can
interrupt a running XLA computation, so the calls run in a child process with
a wall-clock limit. All cases share one jitted program (one compile), called
once per α; the child prints one JSON line per α as it returns, so an α
missing from its output is one that hung.

Every public function with an ``alpha``-like parameter (or one that passes
``**method_kwargs`` to a sampler) must have a case below: a new one fails
:func:`test_every_public_sampler_has_a_case` until it is added.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import numpy as np

ALPHAS = (0.0, 1e-30, 1e30, float("inf"), -1.0, float("nan"))
OFF = (0.0, -1.0, float("nan"))
B, H, W, K = 4, 8, 8, 4
# Wall-clock limit for the child (about 15 s of CPU: import, one compile, six calls).
LIMIT_S = 120

# Kinds of cases: what their reported λ must be at the edges.
#   exact: λ ∈ {0, 1} at 1e-30 and λ = `big` at 1e30 and inf (blend weights, FMix's binarised mask);
#   region: λ is the exact share of a box or mask after clipping, so only off → 1 and inf ≡ 1e30;
#   larger: keep_larger_share, λ' = max(λ, 1 − λ): 1 at 1e-30, 0.5 at 1e30 and inf.


def _cases():
  """Case name -> (kind, λ at α → ∞, f(key, alpha) -> (lam [B], output, input)).

  A case is named after the public function it calls (``module.name`` outside
  the top level), with the variant in brackets. Imports jax lazily: only the
  child process runs the cases.
  """
  import jax
  import jax.numpy as jnp

  import jaxmix
  import jaxmix.detection
  import jaxmix.sequence

  x = jax.random.normal(jax.random.key(0), (B, H, W, 1))
  y = jnp.arange(B)
  boxes = jnp.tile(jnp.array([[[1.0, 1.0, 6.0, 6.0]]]), (B, 1, 1))
  classes = jnp.zeros((B, 1), jnp.int32)
  tokens = jax.random.normal(jax.random.key(1), (B, 5, 3))
  mask = jnp.ones((B, 5), bool)
  sal = jax.random.uniform(jax.random.key(2), (B, H, W))
  spatial = (H, W)

  def own(soft):
    """Each sample's own class weight: its λ (labels are distinct, partners differ)."""
    return soft[jnp.arange(B), y]

  def one_call(fn, opts):
    def f(key, a):
      out, soft = fn(key, x, y, num_classes=K, **opts(a))
      return own(soft), out, x

    return f

  def plan_of(fn, args, opts):
    def f(key, a):
      lam = fn(key, *args, **opts(a)).lam
      return lam, lam, jnp.ones_like(lam)

    return f

  def regmixup(key, a):
    out, soft = jaxmix.regmixup(key, x, y, alpha=a, num_classes=K)
    return own(soft[B:]), out[B:], x

  def sequence_mixup(fn):
    def f(key, a):
      out, _, soft = fn(key, tokens, y, mask=mask, alpha=a, num_classes=K)
      return own(soft), out, tokens

    return f

  def mix_batches(method):
    def f(key, a):
      out, soft = jaxmix.mix_batches(
        key, (x, y), (x[::-1] + 1, y), method=method, alpha=a, num_classes_a=K, num_classes_b=K
      )
      return jnp.sum(soft[:, :K], axis=1), out, x

    return f

  def remix(method):
    def f(key, a):
      out, soft = jaxmix.remix(key, x, y, class_counts=jnp.ones(K), method=method, alpha=a, num_classes=K)
      return own(soft), out, x

    return f

  def detection(fn):
    def f(key, a):
      out, t = fn(key, x, boxes, classes, alpha=a)
      # MixUp weights each own box by λ; CutMix by 1 while kept: report the share of unchanged pixels.
      if fn in (jaxmix.detection.mixup, jaxmix.detection.ultralytics_mixup):
        lam = t.weights[:, 0]
      else:
        lam = jnp.mean((out == x).astype(jnp.float32), axis=(1, 2, 3))
      return lam, out, x

    return f

  alpha = lambda a: dict(alpha=a)  # noqa: E731
  larger_cut = jaxmix.with_plan_transform(jaxmix.sample_cutmix, jaxmix.keep_larger_share)
  larger_mix = jaxmix.with_plan_transform(jaxmix.sample_mixup, jaxmix.keep_larger_share)
  return {
    "mixup": ("exact", 0.5, one_call(jaxmix.mixup, alpha)),
    "cutmix": ("region", None, one_call(jaxmix.cutmix, alpha)),
    "fmix": ("exact", 0.5, one_call(jaxmix.fmix, alpha)),
    "fmix[reformulate]": ("region", None, one_call(jaxmix.fmix, lambda a: dict(alpha=a, reformulate=True))),
    "mixup_cutmix[mixup_alpha]": (
      "exact",
      0.5,
      one_call(jaxmix.mixup_cutmix, lambda a: dict(mixup_alpha=a, cutmix_alpha=0.0)),
    ),
    "mixup_cutmix[cutmix_alpha]": (
      "region",
      None,
      one_call(jaxmix.mixup_cutmix, lambda a: dict(mixup_alpha=0.0, cutmix_alpha=a)),
    ),
    "mixup_cutmix[both]": (
      "region",
      None,
      one_call(jaxmix.mixup_cutmix, lambda a: dict(mixup_alpha=a, cutmix_alpha=a)),
    ),
    "saliencymix": (
      "region",
      None,
      one_call(jaxmix.saliencymix, lambda a: dict(alpha=a, saliency_size=None)),
    ),
    "smoothmix[square]": (
      "region",
      None,
      one_call(jaxmix.smoothmix, lambda a: dict(alpha=a, shape="square")),
    ),
    "multimix": ("exact", 1 / 3, one_call(jaxmix.multimix, lambda a: dict(alpha=a, k=3))),
    "audio_mixup": ("exact", 0.5, one_call(jaxmix.audio_mixup, alpha)),
    "regmixup": ("exact", 0.5, regmixup),
    "remix[mixup]": ("exact", 0.5, remix("mixup")),
    "remix[cutmix]": ("region", None, remix("cutmix")),
    "sequence.mixup": ("exact", 0.5, sequence_mixup(jaxmix.sequence.mixup)),
    "mix_batches[mixup]": ("exact", 0.5, mix_batches("mixup")),
    "mix_batches[cutmix]": ("region", None, mix_batches("cutmix")),
    "with_plan_transform[cutmix, keep_larger_share]": ("region", None, one_call(larger_cut, alpha)),
    "with_plan_transform[mixup, keep_larger_share]": ("larger", 0.5, one_call(larger_mix, alpha)),
    "detection.mixup": ("exact", 0.5, detection(jaxmix.detection.mixup)),
    "detection.cutmix": ("region", None, detection(jaxmix.detection.cutmix)),
    "detection.ultralytics_mixup": ("exact", 0.5, detection(jaxmix.detection.ultralytics_mixup)),
    "sample_mixup": ("exact", 0.5, plan_of(jaxmix.sample_mixup, (B,), alpha)),
    "sequence.sample_mixup": ("exact", 0.5, plan_of(jaxmix.sequence.sample_mixup, (mask,), alpha)),
    "sample_manifold": ("exact", 0.5, plan_of(jaxmix.sample_manifold, (B,), alpha)),
    "guided.sample_alignmix": ("exact", 0.5, plan_of(jaxmix.guided.sample_alignmix, (B,), alpha)),
    "sample_multimix": ("exact", 1 / 3, plan_of(jaxmix.sample_multimix, (B,), lambda a: dict(alpha=a, k=3))),
    "sample_cutmix": ("region", None, plan_of(jaxmix.sample_cutmix, (B, spatial), alpha)),
    "sample_fmix": ("exact", 0.5, plan_of(jaxmix.sample_fmix, (B, spatial), alpha)),
    "sample_mixup_cutmix": (
      "region",
      None,
      plan_of(jaxmix.sample_mixup_cutmix, (B, spatial), lambda a: dict(mixup_alpha=a, cutmix_alpha=a)),
    ),
    "sample_saliencymix": (
      "region",
      None,
      plan_of(jaxmix.sample_saliencymix, (B, spatial), lambda a: dict(alpha=a, saliency=sal)),
    ),
    "sample_smoothmix[square]": (
      "region",
      None,
      plan_of(jaxmix.sample_smoothmix, (B, spatial), lambda a: dict(alpha=a, shape="square")),
    ),
  }


CASE_NAMES = (
  "mixup",
  "cutmix",
  "fmix",
  "fmix[reformulate]",
  "mixup_cutmix[mixup_alpha]",
  "mixup_cutmix[cutmix_alpha]",
  "mixup_cutmix[both]",
  "saliencymix",
  "smoothmix[square]",
  "multimix",
  "audio_mixup",
  "regmixup",
  "remix[mixup]",
  "remix[cutmix]",
  "sequence.mixup",
  "mix_batches[mixup]",
  "mix_batches[cutmix]",
  "with_plan_transform[cutmix, keep_larger_share]",
  "with_plan_transform[mixup, keep_larger_share]",
  "detection.mixup",
  "detection.cutmix",
  "detection.ultralytics_mixup",
  "sample_mixup",
  "sequence.sample_mixup",
  "sample_manifold",
  "guided.sample_alignmix",
  "sample_multimix",
  "sample_cutmix",
  "sample_fmix",
  "sample_mixup_cutmix",
  "sample_saliencymix",
  "sample_smoothmix[square]",
)


def _checked(fn):
  """``f(key, a) -> (lam, outputs all finite, output == input)``: small arrays only."""
  import jax
  import jax.numpy as jnp

  def f(key, a):
    lam, out, inp = fn(key, a)
    leaves = jax.tree.leaves(out)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
    return lam, finite, jnp.array_equal(leaves[0], inp)

  return f


def _worker(each: bool = False) -> None:
  """Child process: every case jitted with α traced; prints one JSON line per α as it returns.

  All cases share one jitted program (one compile: ~4x faster than one per case). With
  ``--each`` every case gets its own program and its own lines, to find the one that hangs.
  """
  import jax
  import jax.numpy as jnp

  cases = _cases()
  assert tuple(cases) == CASE_NAMES, "CASE_NAMES must list the cases of _cases() in order"
  groups = [[name] for name in cases] if each else [list(cases)]
  key = jax.random.key(7)
  for names in groups:
    f = jax.jit(lambda k, a, names=names: {n: _checked(cases[n][2])(k, a) for n in names})
    for a in ALPHAS:
      got = jax.device_get(f(key, jnp.float32(a)))
      rows = {
        n: {"lam": np.asarray(v[0], np.float64).tolist(), "finite": bool(v[1]), "unchanged": bool(v[2])}
        for n, v in got.items()
      }
      print(json.dumps({"alpha": repr(a), "cases": rows}), flush=True)


def _run_child():
  """Runs the child once; returns ``({case: {alpha: row}}, what went wrong or None)``."""
  env = dict(os.environ)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  cmd = [sys.executable, os.path.abspath(__file__), "--worker"]
  try:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S, env=env, cwd=root)
    out, problem = done.stdout, None if done.returncode == 0 else f"child failed:\n{done.stderr[-3000:]}"
  except subprocess.TimeoutExpired as e:
    out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    problem = (
      f"no answer within {LIMIT_S} s: a hang. `python tests/test_alpha_edges.py --worker --each` "
      "runs the cases one by one; the one after the last it prints is the one that hangs"
    )
  records = {name: {} for name in CASE_NAMES}
  for line in out.splitlines():
    if line.startswith("{"):
      record = json.loads(line)
      for name, row in record["cases"].items():
        records[name][record["alpha"]] = row
  return records, problem


def _expected_lambda(kind, big, alpha, lam):
  lam = np.asarray(lam)
  if alpha in ("0.0", "-1.0", "nan"):
    np.testing.assert_array_equal(lam, 1.0, err_msg=f"alpha={alpha} must turn mixing off")
  elif kind == "exact" and alpha == "1e-30":
    assert np.all((lam == 0) | (lam == 1)), f"alpha=1e-30 must give lam in {{0, 1}}, got {lam}"
  elif kind == "larger" and alpha == "1e-30":
    np.testing.assert_array_equal(lam, 1.0)
  elif kind in ("exact", "larger") and alpha in ("1e+30", "inf"):
    np.testing.assert_allclose(lam, big, rtol=0, atol=1e-6, err_msg=f"alpha={alpha} must give lam = {big}")
  assert np.all((lam >= 0) & (lam <= 1)), lam


def _check_case(kind, big, rows):
  for alpha, row in rows.items():
    assert row["finite"], f"non-finite output at alpha={alpha}"
    _expected_lambda(kind, big, alpha, row["lam"])
    if alpha in ("0.0", "-1.0", "nan"):
      assert row["unchanged"], f"alpha={alpha} must leave the input unchanged"
  # +inf is the limit of large α: the same result as a large finite value, for the same key.
  assert rows["inf"]["lam"] == rows["1e+30"]["lam"], "alpha=inf must give what alpha=1e30 gives"


def test_every_sampler_returns_with_the_documented_lambda():
  """One test (not one per case) so that the child runs once, also under pytest-xdist."""
  records, problem = _run_child()
  failures = []
  for name, (kind, big, _) in _cases().items():
    rows = records[name]
    missing = [repr(a) for a in ALPHAS if repr(a) not in rows]
    if missing:
      failures.append(f"{name}: did not return for alpha in {missing}: {problem}")
      continue
    try:
      _check_case(kind, big, rows)
    except AssertionError as e:
      failures.append(f"{name}: {e}")
  assert not failures, "\n".join(failures)


def _takes_alpha(fn):
  params = inspect.signature(fn).parameters
  return any(p == "alpha" or p.endswith("_alpha") for p in params) or any(
    p.kind is inspect.Parameter.VAR_KEYWORD and p.name == "method_kwargs" for p in params.values()
  )


def test_every_public_sampler_has_a_case():
  import jaxmix
  import jaxmix.detection
  import jaxmix.segmentation
  import jaxmix.sequence
  import jaxmix.sharding

  def resolve(name):
    *module, attr = name.split("[")[0].split(".")
    return getattr(getattr(jaxmix, module[0]) if module else jaxmix, attr)

  # A name is covered by a case of its own or of another name for the same function.
  covered = {id(resolve(name)) for name in CASE_NAMES}
  missing = []
  for module in (jaxmix, jaxmix.detection, jaxmix.segmentation, jaxmix.sequence, jaxmix.sharding):
    prefix = "" if module is jaxmix else module.__name__.removeprefix("jaxmix.") + "."
    for name in module.__all__:
      fn = getattr(module, name)
      if inspect.isfunction(fn) and _takes_alpha(fn) and id(fn) not in covered:
        missing.append(prefix + name)
  assert not missing, f"add a case to tests/test_alpha_edges.py for {missing}"


def test_draws_at_the_edges():
  """The drawn λ itself (before any box is clipped), through the shared sampler."""
  import jax
  import jax.numpy as jnp

  from jaxmix._src.core import sampling

  beta = jax.jit(lambda k, a: sampling.beta(k, a, (2000,)))
  dirichlet = jax.jit(lambda k, a: sampling.dirichlet(k, a, (500,), 3))
  key = jax.random.key(0)
  for a in OFF:
    np.testing.assert_array_equal(beta(key, a), 1.0)
    np.testing.assert_array_equal(dirichlet(key, a), np.tile([1.0, 0.0, 0.0], (500, 1)))
  for a in (1e30, float("inf"), 1e20):
    np.testing.assert_array_equal(beta(key, a), 0.5)
    np.testing.assert_allclose(dirichlet(key, a), 1 / 3, rtol=1e-6)
  for a in (1e-30, 1e-20):
    lam = np.asarray(beta(key, a))
    assert np.all((lam == 0) | (lam == 1)) and 0.4 < lam.mean() < 0.6
    w = np.asarray(dirichlet(key, a))
    assert np.all(np.sort(w, axis=1) == [0.0, 0.0, 1.0])
  # Beta(α + 1, α) (FMix reformulated) at the edges, and a NaN β.
  np.testing.assert_array_equal(jax.jit(lambda k: sampling.beta(k, jnp.inf, (8,), jnp.inf))(key), 0.5)
  np.testing.assert_array_equal(jax.jit(lambda k: sampling.beta(k, 1.0, (8,), jnp.nan))(key), 1.0)
  assert beta._cache_size() == 1


def test_large_alpha_is_drawn_exactly():
  """Rounding noise in the acceptance test used to reject about half the candidates for α in 1e8..1e12;
  now every round accepts nearly all, and λ concentrates as Beta(α, α) does (sd = 1 / sqrt(8α + 4))."""
  import jax
  import jax.numpy as jnp

  from jaxmix._src.core import sampling

  for e in (8, 10, 12):
    d = jnp.full((20000,), 10.0**e - 1 / 3, jnp.float32)
    _, accepted, _ = sampling._candidates(jax.random.key(e), d, 1)
    assert float(accepted.mean()) > 0.99, e
  lam = np.asarray(jax.jit(lambda k: sampling.beta(k, 1e6, (20000,)))(jax.random.key(1)), np.float64)
  assert abs(lam.std() / (1 / np.sqrt(8e6 + 4)) - 1) < 0.05


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
  _worker(each="--each" in sys.argv)
