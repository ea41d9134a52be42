"""Test-wide settings.

Compiling dominates the test time on CPU (``jax.random.beta`` alone takes
seconds to compile at the default LLVM optimisation level), and each test
compiles small programs once. Level 0 halves compile time and does not
change results (no fast-math either way); set ``XLA_FLAGS`` yourself to
override. This must run before JAX initialises its backend, hence here.
"""

import os

if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
