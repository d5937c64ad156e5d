"""VGG16 LPIPS architecture, whole network trained from scratch.

    python -m train --config train/configs/vgg_vanilla.py --workdir runs/vgg_vanilla \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    return _base.scratch("vgg", "vanilla")
