"""Implementation of ``shiftlpips_jax.weights`` (private: import the public module)."""
