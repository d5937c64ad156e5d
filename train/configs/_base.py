"""Helpers for the config files (not a config)."""

from train.configs import default


def scratch(net: str, variant: str, **knobs):
    """A whole network trained from scratch (upstream ``--from_scratch --train_trunk``)."""
    c = default.get_config()
    c.net, c.variant = net, variant
    for k, v in knobs.items():
        c.knobs[k] = v
    c.train_trunk = True
    c.init_from = ""
    return c
