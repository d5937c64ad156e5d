"""AlexNet LPIPS architecture, whole network trained from scratch (the paper's baseline).

    python -m train --config train/configs/alex_vanilla.py --workdir runs/alex_vanilla \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    return _base.scratch("alex", "vanilla")
