"""The implementation. Nothing here is public API: import from ``shiftlpips_jax`` and its public submodules."""
