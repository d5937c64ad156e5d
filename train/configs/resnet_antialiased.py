"""Anti-aliased ResNet-18 (upstream ``models_lpf``), whole network from scratch.

BatchNorm uses per-input batch statistics while training (four trunk passes per step, as upstream);
running statistics are averaged over devices. ``clamp="upstream"`` also clamps the 1x1 shortcut
convs (upstream's clamp intent; its code raises on BatchNorm).

    python -m train --config train/configs/resnet_antialiased.py --workdir runs/resnet_aa \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    return _base.scratch("resnet", "antialiased")
