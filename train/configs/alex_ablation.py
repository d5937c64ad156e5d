"""AlexNet ablations of the paper (Sec. 4): conv1 stride, BlurPool location, padding, F-Conv.

Pick one by name after a colon; each is ``variant="custom"`` plus knobs, trained from scratch:

    python -m train --config train/configs/alex_ablation.py:stride2_blur --workdir runs/abl_s2 \
        --config.data.root=/data/BAPPS/dataset/2afc
    python -m train --config train/configs/alex_ablation.py:stride1_blur_before_act_pad2 ...
    python -m train --config train/configs/alex_ablation.py:stride2_feat_after_blur ...
    python -m train --config train/configs/alex_ablation.py:fconv ...

Any knob can also be set directly: ``--config.knobs.conv1_stride=1``.
"""

from train.configs import _base

ABLATIONS = {
    # conv1 stride (with BlurPool keeping the total stride at 4)
    "stride4_blur": dict(conv1_stride=4, blurpool=True),
    "stride2_blur": dict(conv1_stride=2, blurpool=True),
    "stride1_blur": dict(conv1_stride=1, blurpool=True),
    # where conv1's BlurPool sits
    "stride2_feat_after_blur": dict(conv1_stride=2, blurpool=True,
                                    blur_location="feat_after_blur"),
    "stride2_blur_before_act": dict(conv1_stride=2, blurpool=True,
                                    blur_location="blur_before_act"),
    "stride1_blur_before_act": dict(conv1_stride=1, blurpool=True,
                                    blur_location="blur_before_act"),
    # BlurPool reflection padding 2 (pad_more) - with the above this is the ST preset
    "stride1_blur_before_act_pad2": dict(conv1_stride=1, blurpool=True,
                                         blur_location="blur_before_act", pad_more=True),
    "stride2_pad2": dict(conv1_stride=2, blurpool=True, pad_more=True),
    # "CNNs without borders": full convolutions
    "fconv": dict(conv1_stride=4, blurpool=False, fconv=True),
    "stride2_blur_fconv": dict(conv1_stride=2, blurpool=True, fconv=True),
}


def get_config(name: str = "stride2_blur"):
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose one of {sorted(ABLATIONS)}")
    return _base.scratch("alex", "custom", **ABLATIONS[name])
