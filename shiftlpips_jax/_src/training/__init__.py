"""Implementation of ``shiftlpips_jax.training`` (private: import the public module)."""
