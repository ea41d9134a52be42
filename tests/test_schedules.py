"""Schedules: traced hyperparameters follow the step counter without recompiling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmix

B = 8


def test_scheduled_calls_schedules_and_passes_values():
  sched = optax.linear_schedule(0.0, 1.0, transition_steps=10)
  for step in (0, 3, 10, 20):
    np.testing.assert_allclose(jaxmix.scheduled(sched, step), sched(step))
  out = jaxmix.scheduled(0.4, 5)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, 0.4)


def test_off_after_switches_at_off_step():
  sched = optax.linear_schedule(0.2, 1.0, transition_steps=10)
  for step in range(15):
    got = jaxmix.off_after(sched, step, 8)
    np.testing.assert_allclose(got, sched(step) if step < 8 else 0.0, rtol=1e-6)
  np.testing.assert_allclose(jaxmix.off_after(1.0, 9, 8, off_value=0.3), 0.3)


def test_schedule_inside_jit_changes_mixing_without_retrace():
  x = jax.random.uniform(jax.random.key(0), (B, 6, 6, 3))
  labels = jnp.arange(B) % 4
  alpha_fn = optax.linear_schedule(0.0, 1.0, transition_steps=4)
  traces = []

  @jax.jit
  def step_fn(key, step):
    traces.append(1)
    alpha = jaxmix.off_after(alpha_fn, step, off_step=10)
    mixed, targets = jaxmix.mixup(key, x, labels, alpha=alpha, num_classes=4)
    return alpha, mixed, targets

  key = jax.random.key(1)
  lams = []
  for step in range(13):
    alpha, mixed, targets = step_fn(jax.random.fold_in(key, step), jnp.int32(step))
    expected_alpha = 0.0 if step >= 10 else float(alpha_fn(step))
    np.testing.assert_allclose(alpha, expected_alpha, rtol=1e-6)
    lam = targets[jnp.arange(B), labels]
    lams.append(np.asarray(lam))
    if expected_alpha == 0.0:  # step 0 and from the off step on: nothing mixes
      np.testing.assert_array_equal(mixed, x)
  assert len(traces) == 1
  assert all(np.all(lams[s] < 1) for s in range(1, 10))
  assert all(np.all(lams[s] == 1) for s in (0, 10, 11, 12))


def test_scheduled_prob_and_switch_prob_do_not_retrace():
  x = jax.random.uniform(jax.random.key(0), (B, 8, 8, 3))
  traces = []

  @jax.jit
  def step_fn(key, step):
    traces.append(1)
    prob = jaxmix.off_after(1.0, step, off_step=3)
    switch = jaxmix.scheduled(optax.linear_schedule(0.0, 1.0, 2), step)
    plan = jaxmix.sample_mixup_cutmix(
      key, B, (8, 8), mixup_alpha=1.0, cutmix_alpha=1.0, prob=prob, switch_prob=switch
    )
    return plan

  key = jax.random.key(2)
  plans = [step_fn(key, jnp.int32(s)) for s in range(5)]
  assert len(traces) == 1
  # switch_prob 0 at step 0: MixUp (no box content); 1 at step 2: CutMix (blend 1, a box).
  box0 = jaxmix.apply(plans[0], x)
  assert np.all(np.asarray(plans[0].blend) < 1)
  np.testing.assert_allclose(plans[2].blend, 1.0)
  assert not np.allclose(box0, x)
  # prob 0 from step 3: λ = 1 everywhere.
  np.testing.assert_array_equal(plans[3].lam, 1.0)
  np.testing.assert_array_equal(plans[4].lam, 1.0)


def test_schedule_as_manifold_alpha():
  traces = []

  @jax.jit
  def lam_at(step):
    traces.append(1)
    alpha = jaxmix.off_after(2.0, step, off_step=2)
    return jaxmix.sample_manifold(jax.random.key(0), B, alpha=alpha).lam

  assert np.all(np.asarray(lam_at(0)) < 1)
  np.testing.assert_array_equal(lam_at(5), 1.0)
  assert len(traces) == 1
