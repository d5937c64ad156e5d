"""LPIPS "tune": pretrained ImageNet trunk, trunk and heads trained together.

    python -m train --config train/configs/lpips_tune.py --workdir runs/lpips_tune \
        --config.data.root=/data/BAPPS/dataset/2afc
    python -m train --config train/configs/lpips_tune.py --workdir runs/lpips_tune_tv \
        --config.init_from=inits/alexnet_imagenet --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import default


def get_config(net: str = "alex"):
    c = default.get_config()
    c.net, c.variant = net, "vanilla"
    c.train_trunk = True
    c.init_from = f"registry:{net}"
    return c
