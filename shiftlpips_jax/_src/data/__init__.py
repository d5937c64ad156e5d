"""Implementation of ``shiftlpips_jax.data`` (private: import the public module)."""
