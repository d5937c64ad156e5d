"""ST-LPIPS AlexNet (the paper's main metric), whole network trained from scratch.

    python -m train --config train/configs/alex_shift_tolerant.py --workdir runs/alex_st \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    return _base.scratch("alex", "shift_tolerant")
