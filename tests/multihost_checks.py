"""One process of the multi-process check, run by tests/test_multihost.py.

``worker PROCESS_ID PORT OUT``: one of two processes joined by ``jax.distributed.initialize`` on
127.0.0.1:PORT, each with 4 CPU devices; together they run the local-mixing train step on one global
batch over a mesh of all 8 devices, each process feeding its own rows through
``jax.make_array_from_process_local_data``.

``single OUT``: the same step in one process with 8 CPU devices, the reference.

Each writes OUT (an ``.npz``: the mixed images and targets of the global batch, the loss and the
updated parameters), or OUT + ``.skip`` with the reason when this jax cannot run CPU collectives
across processes. The device count must be set before jax is imported, hence a script.
"""

from __future__ import annotations

import os
import sys

ROLE = sys.argv[1]
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "")
  + f" --xla_force_host_platform_device_count={4 if ROLE == 'worker' else 8}"
  + " --xla_backend_optimization_level=0"
)

import numpy as np  # noqa: E402

B, H, W, C, K = 16, 8, 8, 3, 5
STEP_KEY_SEED, STEP = 42, 3


def global_batch():
  """The global batch every process draws in full; each feeds only its own rows."""
  rng = np.random.default_rng(0)
  images = rng.normal(size=(B, H, W, C)).astype(np.float32)
  labels = rng.integers(0, K, size=B).astype(np.int32)
  return images, labels


def skip(out: str, reason: str) -> None:
  with open(out + ".skip", "w") as f:
    f.write(reason)
  sys.exit(0)


def main() -> None:
  import jax

  if ROLE == "worker":
    process_id, port, out = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:  # the default in recent jax; older versions have no CPU collectives unless asked
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError) as e:
      skip(out, f"this jax ({jax.__version__}) has no gloo CPU collectives: {e}")
    try:
      jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=2,
        process_id=process_id,
        initialization_timeout=120,
      )
    except Exception as e:  # noqa: BLE001 - any failure to start means the platform cannot run this
      skip(out, f"jax.distributed.initialize failed on CPU: {type(e).__name__}: {e}")
  else:
    out = sys.argv[2]

  import jax.numpy as jnp
  import optax
  from flax import linen as nn
  from flax.training import train_state
  from jax.experimental import multihost_utils
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  import jaxmix

  assert jax.device_count() == 8, jax.devices()
  mesh = jax.make_mesh((8,), ("data",))
  data = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())

  if ROLE == "worker":
    # Can processes talk? A cross-process sum of one value per device.
    try:
      ones = jax.make_array_from_process_local_data(data, np.ones(jax.local_device_count(), np.float32))
      total = float(jax.jit(jnp.sum, out_shardings=replicated)(ones).addressable_data(0))
    except Exception as e:  # noqa: BLE001
      skip(out, f"CPU collectives across processes are unavailable: {type(e).__name__}: {e}")
    assert total == 8.0, total

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Conv(4, (3, 3))(x))
      return nn.Dense(K)(x.mean((1, 2)))

  model = Net()
  params = model.init(jax.random.key(0), jnp.zeros((1, H, W, C)))
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))
  state = jax.device_put(state, replicated)
  mix = jaxmix.sharding.local(jaxmix.mixup_cutmix, mesh, "data")

  @jax.jit
  def train_step(state, key, images, labels):
    images, targets = mix(key, images, labels, mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=K, mode="elem")

    def loss_fn(params):
      return optax.softmax_cross_entropy(state.apply_fn(params, images), targets).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss, images, targets

  images, labels = global_batch()
  if ROLE == "worker":
    # This process's rows of the global batch: the union of its devices' shards.
    rows = sorted({i[0].indices(B)[:2] for i in data.addressable_devices_indices_map(images.shape).values()})
    start, stop = rows[0][0], rows[-1][1]
    assert stop - start == B // 2, rows
    images = jax.make_array_from_process_local_data(data, images[start:stop])
    labels = jax.make_array_from_process_local_data(data, labels[start:stop])
  else:
    images, labels = jax.device_put((images, labels), data)

  key = jax.random.fold_in(jax.random.key(STEP_KEY_SEED), STEP)  # the same key in every process
  new_state, loss, mixed, targets = train_step(state, key, images, labels)

  def host(x):
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  result = {"loss": host(loss), "mixed": host(mixed), "targets": host(targets)}
  for path, leaf in jax.tree_util.tree_flatten_with_path(new_state.params)[0]:
    result["params" + jax.tree_util.keystr(path)] = host(leaf)
  np.savez(out, **result)
  if ROLE == "worker":
    jax.distributed.shutdown()


if __name__ == "__main__":
  main()
