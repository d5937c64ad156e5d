"""Defaults shared by every training config: upstream's recipe (stlpips ``train.py``).

Not run directly; the configs next to it override a few fields. Every field can be overridden on
the command line, e.g. ``--config.batch_size=100 --config.data.root=/data/BAPPS/dataset/2afc``.

    python -m train --config train/configs/alex_shift_tolerant.py --workdir runs/alex_st \
        --config.data.root=/data/BAPPS/dataset/2afc
"""

import ml_collections

TRAIN_SETS = ("train/traditional", "train/cnn", "train/mix")
VAL_SETS = ("val/traditional", "val/cnn", "val/superres", "val/deblur", "val/color",
            "val/frameinterp")


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Model: sl.make_backbone(net, variant, **knobs) under LPIPS heads.
    c.net = "alex"
    c.variant = "shift_tolerant"
    c.knobs = ml_collections.ConfigDict()  # ablation knobs, e.g. conv1_stride=2 (variant custom)
    c.dtype = "float32"                     # trunk compute dtype ("bfloat16" on accelerators)
    c.dropout = True                        # dropout(0.5) before the heads while training
    # What is trained / where it starts (upstream --from_scratch --train_trunk).
    c.train_trunk = True                    # False = LPIPS "lin": frozen trunk, heads only
    c.init_from = ""                        # "" = scratch; metric dir or "registry:alex"
    c.image_size = 64                       # init shapes only
    c.clamp = "upstream"                    # 1x1 kernels >= 0 after each step: upstream|heads
    # Optimisation (upstream Trainer / train.py).
    c.lr = 1e-4
    c.b1 = 0.5
    c.b2 = 0.999
    c.nepoch = 5                            # epochs at the base learning rate
    c.nepoch_decay = 5                      # epochs of linear decay
    c.batch_size = 50                       # global, split over devices and hosts
    c.eval_batch_size = 50
    c.max_steps = -1                        # > 0: stop early (the schedule is unchanged)
    c.seed = 0
    # Data (shiftlpips_jax.data): extracted BAPPS folder or a built TFDS dataset.
    c.data = ml_collections.ConfigDict()
    c.data.root = ""                        # .../BAPPS/dataset/2afc
    c.data.tfds_dir = ""                    # TFDS data_dir holding bapps_2afc (wins over root)
    c.data.load_size = 64
    c.data.train_sets = TRAIN_SETS          # tuples: --config.data.train_sets="('train/cnn',)"
    c.data.val_sets = VAL_SETS
    c.data.worker_count = 0                 # grain worker processes (decode off the main one)
    c.data.read_threads = 16
    c.data.shard_by_process = True          # each host reads its own shard of the records
    c.data.shuffle = True                   # reshuffle every epoch (upstream serial_batches=False)
    c.data.synthetic = 0                    # > 0: that many synthetic triplets instead (smoke)
    c.data.synthetic_val = 0
    # Bookkeeping.
    c.log_every = 100
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.async_checkpoints = True
    c.val_every = 5000                      # 0 = no validation
    c.export = True                         # write WORKDIR/metric at the end
    c.export_dir = ""
    return c
