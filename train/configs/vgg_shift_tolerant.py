"""ST-LPIPS VGG16 (anti-aliased, reflection padding 2), whole network from scratch.

    python -m train --config train/configs/vgg_shift_tolerant.py --workdir runs/vgg_st \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    return _base.scratch("vgg", "shift_tolerant")
