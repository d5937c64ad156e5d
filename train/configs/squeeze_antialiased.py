"""Anti-aliased SqueezeNet 1.1 (upstream ``models_lpf``, pad_fire=2), whole network from scratch.

Upstream's clamp also clamps the fire modules' 1x1 convs (``clamp="upstream"``); use
``--config.clamp=heads`` to clamp only the LPIPS heads.

    python -m train --config train/configs/squeeze_antialiased.py --workdir runs/squeeze_aa \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    return _base.scratch("squeeze", "antialiased")
