"""Anti-aliased backbones (flax.linen, NHWC) that return named feature taps.

AlexNet, VGG16 and SqueezeNet1.1 are described by a *plan*: a flat sequence of layer ops
(conv, ReLU, BlurPool, max-pool, fire, tap) computed from the module's fields. The same plan runs
the forward pass, gives the PyTorch state-dict name of every layer (``slice{k}.{index}`` as in
stlpips/lpips, or ``features.{index}`` as in torchvision: the index counts layers, taps split
slices) and the size arithmetic behind each network's minimum input size. One configurable
:class:`AlexNet` covers the paper's ablation knobs; presets are just field values:

======================  ===========  ========  ========  =================  =====
AlexNet preset          conv1_stride blurpool  pad_more  blur_location      fconv
======================  ===========  ========  ========  =================  =====
``vanilla``             4            no        -         -                  no
``antialiased``         2            yes       no (1)    ``original``       no
``shift_tolerant``      1            yes       yes (2)   ``blur_before_act``no
======================  ===========  ========  ========  =================  =====

ResNet-18 (batch norm, residual blocks) is written out explicitly with the same conventions.

Example::

    net = make_backbone("alex", "shift_tolerant")
    variables = net.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    taps = net.apply(variables, images)            # {"relu1": ..., ..., "relu5": ...}
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import layers

__all__ = [
    "AlexNet", "VGG16", "SqueezeNet11", "ResNet18", "make_backbone", "BACKBONE_PRESETS",
    "TorchEntry", "min_input_size",
]

BLUR_LOCATIONS = ("original", "feat_after_blur", "blur_before_act")


# --------------------------------------------------------------------------------------------
# Plan ops.

class Conv(NamedTuple):
    name: str
    features: int
    kernel: int
    stride: int = 1
    padding: int = 0


class ReLU(NamedTuple):
    pass


class Blur(NamedTuple):
    name: str


class MaxPool(NamedTuple):
    window: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False


class Fire(NamedTuple):
    name: str
    squeeze: int
    expand1x1: int
    expand3x3: int
    pad_squeeze: int
    pad_expand1x1: int
    pad_expand3x3: int


class Tap(NamedTuple):
    name: str


class TorchEntry(NamedTuple):
    """One PyTorch state-dict tensor and where it lives in the Flax variables.

    kind: ``conv`` (OIHW -> HWIO), ``bias``, ``bn_scale``, ``bn_bias``, ``bn_mean``, ``bn_var``
    (BatchNorm), ``bn_count`` (``num_batches_tracked``: read and ignored), ``blur`` (a BlurPool
    buffer: checked against the binomial filter, not stored; ``path`` holds (channels, size)).
    """
    torch_name: str
    collection: str
    path: tuple
    kind: str


def _conv_entries(prefix: str, path: tuple, bias: bool = True) -> list[TorchEntry]:
    out = [TorchEntry(prefix + "weight", "params", path + ("kernel",), "conv")]
    if bias:
        out.append(TorchEntry(prefix + "bias", "params", path + ("bias",), "bias"))
    return out


def _bn_entries(prefix: str, path: tuple) -> list[TorchEntry]:
    return [
        TorchEntry(prefix + "weight", "params", path + ("scale",), "bn_scale"),
        TorchEntry(prefix + "bias", "params", path + ("bias",), "bn_bias"),
        TorchEntry(prefix + "running_mean", "batch_stats", path + ("mean",), "bn_mean"),
        TorchEntry(prefix + "running_var", "batch_stats", path + ("var",), "bn_var"),
        TorchEntry(prefix + "num_batches_tracked", "", (), "bn_count"),
    ]


def _blur_entry(name: str, channels: int, size: int) -> TorchEntry:
    return TorchEntry(name, "", (channels, size), "blur")


class _PlanNet(nn.Module):
    """A backbone run from a flat plan of ops (see module docstring)."""

    filter_size: int = 3
    pad_more: bool = False
    dtype: Any = jnp.float32

    @property
    def plan(self) -> tuple:
        raise NotImplementedError

    @property
    def tap_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.plan if isinstance(op, Tap))

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        del train  # no batch statistics or dropout in these trunks
        x = x.astype(self.dtype)
        taps: dict[str, jax.Array] = {}
        plan = self.plan
        skip_blur = False
        for i, op in enumerate(plan):
            if isinstance(op, Conv):
                # layers.conv_general_dilated: same conv, fast input gradient when Cin <= 4.
                conv_fn = layers.conv_general_dilated
                if i + 1 < len(plan) and isinstance(plan[i + 1], Blur):
                    # Conv straight into BlurPool (ST AlexNet's blur_before_act): one strided
                    # convolution with the composed kernel (layers.conv_blur); same parameters.
                    conv_fn = functools.partial(layers.conv_blur, filter_size=self.filter_size,
                                                blur_stride=2, pad_more=self.pad_more)
                    skip_blur = True
                x = nn.Conv(op.features, (op.kernel, op.kernel), strides=op.stride,
                            padding=((op.padding, op.padding),) * 2, dtype=self.dtype,
                            conv_general_dilated=conv_fn, name=op.name)(x)
            elif isinstance(op, Blur) and skip_blur:
                skip_blur = False  # already applied inside the preceding conv
            elif isinstance(op, ReLU):
                x = nn.relu(x)
            elif isinstance(op, Blur):
                x = layers.blur_pool(x, filter_size=self.filter_size, stride=2,
                                     pad_more=self.pad_more)
            elif isinstance(op, MaxPool):
                x = layers.max_pool(x, window=op.window, stride=op.stride, padding=op.padding,
                                    ceil_mode=op.ceil_mode)
            elif isinstance(op, Fire):
                x = _FireModule(op, dtype=self.dtype, name=op.name)(x)
            elif isinstance(op, Tap):
                taps[op.name] = x
        return taps

    def tap_sizes(self, size: int) -> list[int]:
        """Spatial size of each tap for input side ``size`` (0 where the input is too small)."""
        out = []
        for op in self.plan:
            if size <= 0:
                break
            if isinstance(op, Conv):
                size = layers.conv_out(size, op.kernel, op.stride, op.padding)
            elif isinstance(op, Blur):
                size = layers.blur_out(size, self.filter_size, 2, self.pad_more)
            elif isinstance(op, MaxPool):
                size = layers.pool_out(size, op.window, op.stride, op.padding, op.ceil_mode)
            elif isinstance(op, Fire):
                size = layers.conv_out(size, 1, 1, op.pad_squeeze)
                e1 = layers.conv_out(size, 1, 1, op.pad_expand1x1)
                e3 = layers.conv_out(size, 3, 1, op.pad_expand3x3)
                size = e1 if e1 == e3 else 0  # the two branches are concatenated
            elif isinstance(op, Tap):
                out.append(size)
        return out + [0] * (len(self.tap_names) - len(out))

    def torch_entries(self, layout: str) -> list[TorchEntry]:
        """State-dict names for ``layout`` ``"stlpips"`` (slice{k}.{i}) or ``"torchvision"``."""
        if layout not in ("stlpips", "torchvision"):
            raise ValueError(f"unknown layout {layout!r}; expected 'stlpips' or 'torchvision'")
        entries: list[TorchEntry] = []
        index, slice_no, channels = 0, 1, 3
        for op in self.plan:
            if isinstance(op, Tap):
                slice_no += 1
                continue
            prefix = (f"slice{slice_no}.{index}." if layout == "stlpips" else f"features.{index}.")
            if isinstance(op, Conv):
                entries += _conv_entries(prefix, (op.name,))
                channels = op.features
            elif isinstance(op, Blur):
                entries.append(_blur_entry(prefix + "filt", channels, self.filter_size))
            elif isinstance(op, Fire):
                for part in ("squeeze", "expand1x1", "expand3x3"):
                    entries += _conv_entries(f"{prefix}{part}.", (op.name, part))
                channels = op.expand1x1 + op.expand3x3
            index += 1
        return entries


class _FireModule(nn.Module):
    op: Fire
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        op = self.op

        def conv(features, kernel, pad, name):
            return nn.Conv(features, (kernel, kernel), padding=((pad, pad),) * 2, dtype=self.dtype,
                           name=name)

        x = nn.relu(conv(op.squeeze, 1, op.pad_squeeze, "squeeze")(x))
        a = nn.relu(conv(op.expand1x1, 1, op.pad_expand1x1, "expand1x1")(x))
        b = nn.relu(conv(op.expand3x3, 3, op.pad_expand3x3, "expand3x3")(x))
        return jnp.concatenate([a, b], axis=-1)


# --------------------------------------------------------------------------------------------
# AlexNet: the paper's ablation knobs in one module.

class AlexNet(_PlanNet):
    """AlexNet trunk with the ST-LPIPS ablation knobs; taps ``relu1`` .. ``relu5``.

    Attributes:
      conv1_stride: stride of the first convolution: 4 (AlexNet), 2 or 1.
      blurpool: replace each strided max-pool by max-pool(stride 1) + BlurPool, and (for
        conv1_stride < 4) follow conv1 with a BlurPool so the total stride stays 4.
      blur_location: where conv1's BlurPool sits (conv1_stride < 4 only): ``original``
        (conv -> ReLU -> tap -> blur), ``feat_after_blur`` (conv -> ReLU -> blur -> tap) or
        ``blur_before_act`` (conv -> blur -> ReLU -> tap).
      pad_more: BlurPool reflection padding ``filter_size - 1`` (2) instead of 1.
      fconv: full convolutions ("CNNs without borders"): padding ``kernel - 1`` on every conv.
      filter_size: binomial BlurPool filter taps.
    """

    conv1_stride: int = 4
    blurpool: bool = False
    blur_location: str = "original"
    fconv: bool = False

    channels = (64, 192, 384, 256, 256)

    @property
    def plan(self) -> tuple:
        if self.conv1_stride not in (1, 2, 4):
            raise ValueError(f"AlexNet conv1_stride must be 4, 2 or 1, got {self.conv1_stride}")
        if self.blur_location not in BLUR_LOCATIONS:
            raise ValueError(f"unknown blur_location {self.blur_location!r}; expected one of "
                             f"{BLUR_LOCATIONS}")
        first_blur = self.blurpool and self.conv1_stride < 4
        if self.blur_location != "original" and not first_blur:
            raise ValueError("blur_location only applies with blurpool=True and conv1_stride < 4 "
                             "(there is no BlurPool after conv1 otherwise)")

        def pad(k):
            return k - 1 if self.fconv else k // 2

        plan: list = [Conv("conv1", 64, 11, self.conv1_stride, 10 if self.fconv else 2)]
        if not first_blur:
            plan += [ReLU(), Tap("relu1")]
        elif self.blur_location == "original":
            plan += [ReLU(), Tap("relu1"), Blur("blur1")]
        elif self.blur_location == "feat_after_blur":
            plan += [ReLU(), Blur("blur1"), Tap("relu1")]
        else:
            plan += [Blur("blur1"), ReLU(), Tap("relu1")]

        def pool(k):
            if self.blurpool:
                return [MaxPool(3, 1), Blur(f"blur{k}")]
            return [MaxPool(3, 2)]

        plan += pool(2) + [Conv("conv2", 192, 5, 1, pad(5)), ReLU(), Tap("relu2")]
        plan += pool(3) + [Conv("conv3", 384, 3, 1, pad(3)), ReLU(), Tap("relu3")]
        plan += [Conv("conv4", 256, 3, 1, pad(3)), ReLU(), Tap("relu4")]
        plan += [Conv("conv5", 256, 3, 1, pad(3)), ReLU(), Tap("relu5")]
        return tuple(plan)


class VGG16(_PlanNet):
    """VGG16 trunk; taps ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``.

    Attributes:
      blurpool: max-pool(2, stride 1) + BlurPool instead of max-pool(2, stride 2).
      pad_more: BlurPool reflection padding 2 instead of 1.
      fconv: full convolutions (3x3 with padding 2).
    """

    blurpool: bool = False
    fconv: bool = False

    channels = (64, 128, 256, 512, 512)

    @property
    def plan(self) -> tuple:
        stages = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
        pad = 2 if self.fconv else 1
        plan: list = []
        for s, (width, reps) in enumerate(stages, start=1):
            if s > 1:
                plan += ([MaxPool(2, 1), Blur(f"blur{s}")] if self.blurpool else [MaxPool(2, 2)])
            for r in range(1, reps + 1):
                plan += [Conv(f"conv{s}_{r}", width, 3, 1, pad), ReLU()]
            plan.append(Tap(f"relu{s}_{reps}"))
        return tuple(plan)


class SqueezeNet11(_PlanNet):
    """SqueezeNet 1.1 trunk; taps ``relu1`` .. ``relu7``.

    ``blurpool=False`` is torchvision's squeezenet1_1 (conv1 stride 2, ceil-mode max-pools).
    ``blurpool=True`` is upstream's anti-aliased version: conv1 stride 1 with padding 1, a
    BlurPool after the first ReLU, max-pool(3, stride 1) + BlurPool, and fire modules padded
    (squeeze 2, expand1x1 1, expand3x3 2) as in upstream ``models_lpf`` (pad_fire=2).
    """

    blurpool: bool = False

    channels = (64, 128, 256, 384, 384, 512, 512)

    @property
    def plan(self) -> tuple:
        def fire(name, s, e):
            if self.blurpool:
                return Fire(name, s, e, e, 2, 1, 2)
            return Fire(name, s, e, e, 0, 0, 1)

        def pool(k):
            if self.blurpool:
                return [MaxPool(3, 1, 0, True), Blur(f"blur{k}")]
            return [MaxPool(3, 2, 0, True)]

        if self.blurpool:
            plan: list = [Conv("conv1", 64, 3, 1, 1), ReLU(), Tap("relu1"), Blur("blur1")]
        else:
            plan = [Conv("conv1", 64, 3, 2, 0), ReLU(), Tap("relu1")]
        plan += pool(2) + [fire("fire2", 16, 64), fire("fire3", 16, 64), Tap("relu2")]
        plan += pool(3) + [fire("fire4", 32, 128), fire("fire5", 32, 128), Tap("relu3")]
        plan += pool(4) + [fire("fire6", 48, 192), Tap("relu4")]
        plan += [fire("fire7", 48, 192), Tap("relu5")]
        plan += [fire("fire8", 64, 256), Tap("relu6")]
        plan += [fire("fire9", 64, 256), Tap("relu7")]
        return tuple(plan)


# --------------------------------------------------------------------------------------------
# ResNet-18.

class _BasicBlock(nn.Module):
    features: int
    stride: int
    downsample: bool
    blurpool: bool
    filter_size: int
    pad_more: bool
    dtype: Any

    @nn.compact
    def __call__(self, x, train: bool):
        def bn(name):
            return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                dtype=self.dtype, name=name)

        def conv(features, kernel, stride, name):
            pad = kernel // 2
            return nn.Conv(features, (kernel, kernel), strides=stride, padding=((pad, pad),) * 2,
                           use_bias=False, dtype=self.dtype, name=name)

        def blur(h):
            return layers.blur_pool(h, filter_size=self.filter_size, stride=self.stride,
                                    pad_more=self.pad_more)

        anti = self.blurpool and self.stride > 1
        out = conv(self.features, 3, 1 if self.blurpool else self.stride, "conv1")(x)
        out = nn.relu(bn("bn1")(out))
        if anti:
            out = blur(out)
        out = bn("bn2")(conv(self.features, 3, 1, "conv2")(out))
        identity = x
        if self.downsample:
            if anti:
                identity = blur(identity)
            identity = conv(self.features, 1, 1 if self.blurpool else self.stride,
                            "downsample_conv")(identity)
            identity = bn("downsample_bn")(identity)
        return nn.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 trunk; taps ``relu1, conv2, conv3, conv4, conv5`` (as upstream).

    ``blurpool=False`` is torchvision's resnet18. ``blurpool=True`` is upstream's anti-aliased
    resnet18 (``pool_only=False``): conv1 stride 1, max-pool replaced by BlurPool -> max-pool(2,
    stride 1) -> BlurPool, and every strided block blurs before its second conv and its shortcut.
    BatchNorm uses running statistics unless ``train=True``.
    """

    blurpool: bool = False
    filter_size: int = 3
    pad_more: bool = False
    dtype: Any = jnp.float32

    channels = (64, 64, 128, 256, 512)
    tap_names = ("relu1", "conv2", "conv3", "conv4", "conv5")

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        x = x.astype(self.dtype)
        x = nn.Conv(64, (7, 7), strides=1 if self.blurpool else 2, padding=((3, 3),) * 2,
                    use_bias=False, dtype=self.dtype,
                    conv_general_dilated=layers.conv_general_dilated, name="conv1")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         dtype=self.dtype, name="bn1")(x)
        x = nn.relu(x)
        taps = {"relu1": x}
        if self.blurpool:
            x = layers.blur_pool(x, filter_size=self.filter_size, stride=2, pad_more=self.pad_more)
            x = layers.max_pool(x, window=2, stride=1)
            x = layers.blur_pool(x, filter_size=self.filter_size, stride=2, pad_more=self.pad_more)
        else:
            x = layers.max_pool(x, window=3, stride=2, padding=1)
        in_ch = 64
        for stage, (width, tap) in enumerate(zip((64, 128, 256, 512), self.tap_names[1:]), 1):
            for b in range(2):
                stride = 2 if (stage > 1 and b == 0) else 1
                x = _BasicBlock(width, stride, stride != 1 or in_ch != width, self.blurpool,
                                self.filter_size, self.pad_more, self.dtype,
                                name=f"layer{stage}_{b}")(x, train)
                in_ch = width
            taps[tap] = x
        return taps

    def tap_sizes(self, size: int) -> list[int]:
        sizes = []
        size = layers.conv_out(size, 7, 1 if self.blurpool else 2, 3)
        sizes.append(size)

        def blur(s):
            return layers.blur_out(s, self.filter_size, 2, self.pad_more) if s > 0 else 0

        if self.blurpool:
            size = blur(layers.pool_out(blur(size), 2, 1))
        else:
            size = layers.pool_out(size, 3, 2, 1)
        sizes.append(size)
        for _ in range(3):
            if size <= 0:
                size = 0
            elif self.blurpool:
                size = blur(size)
            else:
                size = layers.conv_out(size, 3, 2, 1)
            sizes.append(size)
        return sizes

    def torch_entries(self, layout: str) -> list[TorchEntry]:
        if layout == "stlpips":
            # resnet18net slices keep the index of each stage in its 8-layer sequence.
            names = {"conv1": "slice1.0.", "bn1": "slice1.1.", "pool": "slice2.3.",
                     1: "slice2.4.", 2: "slice3.5.", 3: "slice4.6.", 4: "slice5.7."}
        elif layout == "torchvision":
            names = {"conv1": "conv1.", "bn1": "bn1.", "pool": "maxpool.",
                     1: "layer1.", 2: "layer2.", 3: "layer3.", 4: "layer4."}
        else:
            raise ValueError(f"unknown layout {layout!r}; expected 'stlpips' or 'torchvision'")
        entries = _conv_entries(names["conv1"], ("conv1",), bias=False)
        entries += _bn_entries(names["bn1"], ("bn1",))
        if self.blurpool:
            entries.append(_blur_entry(names["pool"] + "0.filt", 64, self.filter_size))
            entries.append(_blur_entry(names["pool"] + "2.filt", 64, self.filter_size))
        in_ch = 64
        for stage, width in enumerate((64, 128, 256, 512), 1):
            for b in range(2):
                stride = 2 if (stage > 1 and b == 0) else 1
                p = f"{names[stage]}{b}."
                path = (f"layer{stage}_{b}",)
                entries += _conv_entries(p + "conv1.", path + ("conv1",), bias=False)
                entries += _bn_entries(p + "bn1.", path + ("bn1",))
                if self.blurpool and stride > 1:
                    entries.append(_blur_entry(p + "conv2.0.filt", width, self.filter_size))
                    entries += _conv_entries(p + "conv2.1.", path + ("conv2",), bias=False)
                else:
                    entries += _conv_entries(p + "conv2.", path + ("conv2",), bias=False)
                entries += _bn_entries(p + "bn2.", path + ("bn2",))
                if stride != 1 or in_ch != width:
                    d = 0
                    if self.blurpool:
                        entries.append(_blur_entry(f"{p}downsample.0.filt", in_ch,
                                                   self.filter_size))
                        d = 1
                    entries += _conv_entries(f"{p}downsample.{d}.", path + ("downsample_conv",),
                                             bias=False)
                    entries += _bn_entries(f"{p}downsample.{d + 1}.", path + ("downsample_bn",))
                in_ch = width
        return entries


# --------------------------------------------------------------------------------------------
# Presets.

BACKBONE_PRESETS: dict[tuple[str, str], tuple[type, dict]] = {
    ("alex", "vanilla"): (AlexNet, dict(conv1_stride=4, blurpool=False)),
    ("alex", "antialiased"): (AlexNet, dict(conv1_stride=2, blurpool=True, pad_more=False,
                                            blur_location="original")),
    ("alex", "shift_tolerant"): (AlexNet, dict(conv1_stride=1, blurpool=True, pad_more=True,
                                               blur_location="blur_before_act")),
    ("vgg", "vanilla"): (VGG16, dict(blurpool=False)),
    ("vgg", "antialiased"): (VGG16, dict(blurpool=True, pad_more=False)),
    ("vgg", "shift_tolerant"): (VGG16, dict(blurpool=True, pad_more=True)),
    ("squeeze", "vanilla"): (SqueezeNet11, dict(blurpool=False)),
    ("squeeze", "antialiased"): (SqueezeNet11, dict(blurpool=True, pad_more=False)),
    ("resnet", "vanilla"): (ResNet18, dict(blurpool=False)),
    ("resnet", "antialiased"): (ResNet18, dict(blurpool=True, pad_more=False)),
}
BACKBONE_CLASSES = {"alex": AlexNet, "vgg": VGG16, "squeeze": SqueezeNet11, "resnet": ResNet18}
NET_ALIASES = {"alexnet": "alex", "vgg16": "vgg", "squeezenet": "squeeze",
               "squeezenet1_1": "squeeze", "resnet18": "resnet"}


def canonical_net(net: str) -> str:
    net = NET_ALIASES.get(net, net)
    if net not in BACKBONE_CLASSES:
        raise ValueError(f"unknown net {net!r}; known nets: {sorted(BACKBONE_CLASSES)}")
    return net


def make_backbone(net: str, variant: str = "vanilla", *, dtype: Any = jnp.float32,
                  **knobs) -> nn.Module:
    """Builds a backbone preset, optionally overriding fields (the ablation knobs).

    Args:
      net: ``alex``, ``vgg``, ``squeeze`` or ``resnet``.
      variant: a preset name (``vanilla``, ``antialiased``, ``shift_tolerant`` where defined) or
        ``custom`` to start from the class defaults and set every knob yourself.
      dtype: computation dtype (parameters stay float32).
      **knobs: field overrides, e.g. ``conv1_stride=2, blur_location="feat_after_blur"``.
    """
    net = canonical_net(net)
    cls = BACKBONE_CLASSES[net]
    if variant == "custom":
        fields = {}
    else:
        try:
            _, fields = BACKBONE_PRESETS[(net, variant)]
        except KeyError:
            known = sorted(v for n, v in BACKBONE_PRESETS if n == net) + ["custom"]
            raise ValueError(f"unknown variant {variant!r} for net {net!r}; known variants: "
                             f"{known}") from None
    names = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    bad = sorted(set(knobs) - names)
    if bad:
        raise ValueError(f"unknown knob(s) {bad} for {cls.__name__}; known: {sorted(names)}")
    module = cls(**{**fields, **knobs}, dtype=dtype)
    if isinstance(module, _PlanNet):
        _ = module.plan  # validate knob combination eagerly
    return module


def min_input_size(backbone) -> int:
    """Smallest spatial side for which every tap is non-empty (and reflection padding valid)."""
    for size in range(1, 4097):
        if all(s >= 1 for s in backbone.tap_sizes(size)):
            return size
    raise ValueError("no valid input size below 4097")


def describe(backbone) -> dict:
    """The backbone's class name and fields, JSON-serialisable (for checkpoint metadata)."""
    out = {"class": type(backbone).__name__}
    for f in dataclasses.fields(backbone):
        if f.name in ("parent", "name", "dtype"):
            continue
        out[f.name] = getattr(backbone, f.name)
    return out


def from_description(desc: dict, dtype: Any = jnp.float32) -> nn.Module:
    classes = {c.__name__: c for c in BACKBONE_CLASSES.values()}
    desc = dict(desc)
    name = desc.pop("class")
    if name not in classes:
        raise ValueError(f"unknown backbone class {name!r} in checkpoint metadata")
    return classes[name](**desc, dtype=dtype)

