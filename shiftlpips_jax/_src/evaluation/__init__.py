"""Implementation of ``shiftlpips_jax.evaluation`` (private: import the public module)."""
