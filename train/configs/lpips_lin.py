"""LPIPS "lin": pretrained ImageNet AlexNet trunk frozen, only the heads (and rank net) learn.

The trunk comes from ``init_from``: the offline registry's ImageNet AlexNet (default), or a metric
directory made from a torchvision .pth by ``convert/torchvision_init.py``.

    python -m train --config train/configs/lpips_lin.py --workdir runs/lpips_lin \
        --config.data.root=/data/BAPPS/dataset/2afc
    python -m train --config train/configs/lpips_lin.py:vgg --workdir runs/lpips_lin_vgg \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import default


def get_config(net: str = "alex"):
    c = default.get_config()
    c.net, c.variant = net, "vanilla"
    c.train_trunk = False
    c.init_from = f"registry:{net}"
    return c
