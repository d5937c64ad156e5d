"""Smoke run: vanilla AlexNet trained from scratch on synthetic in-memory triplets (no BAPPS
needed): 16 steps of 8 with logs, checkpoints, validation and export; about a minute on a CPU.

    python -m train --config train/configs/tiny.py --workdir /tmp/shiftlpips_tiny
    python -m train --config train/configs/tiny.py --workdir /tmp/tiny_bapps \
        --config.data.synthetic=0 --config.data.root=/data/BAPPS/dataset/2afc
"""

from train.configs import _base


def get_config():
    c = _base.scratch("alex", "vanilla")
    c.data.synthetic = 64           # 64 synthetic training triplets (0 = use data.root/tfds_dir)
    c.data.synthetic_val = 32
    c.data.load_size = 64
    c.data.read_threads = 2
    c.batch_size = 8
    c.eval_batch_size = 8
    c.nepoch, c.nepoch_decay = 1, 1
    c.log_every = 2
    c.checkpoint_every = 4
    c.val_every = 8
    return c
