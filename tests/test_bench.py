"""``shiftlpips bench`` (``_src/bench.py``): the table and JSON it writes (never its timings),
workload parsing and its errors, and the message when the PyTorch reference is missing. The
layers themselves are checked in test_layers.py."""

import json

import jax
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax import cli
from shiftlpips_jax._src import bench


def test_bench_cli_output_structure(capsys, tmp_path):
    # A tiny workload with random weights: the structure only.
    out_json = tmp_path / "bench.json"
    code = cli.main(["bench", "--models", "alex", "--workloads", "32x2", "--repeats", "1",
                     "--warmup", "0", "--gap", "0", "--matmul-size", "128", "--random-init",
                     "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("# shiftlpips bench")
    assert lines[1].split()[:4] == ["model", "input", "mode", "dtype"]
    assert "GFLOP/pair" in lines[1] and "of matmul" in lines[1]
    rows = [ln.split() for ln in lines[2:] if not ln.startswith("#")]
    assert [r[:4] for r in rows] == [["alex/shift_tolerant", "32x32x2", "forward", "float32"],
                                     ["alex/shift_tolerant", "32x32x2", "grad", "float32"]]
    for r in rows:
        assert float(r[4]) > 0            # JAX pairs/s
        assert r[5] == "-" and r[6] == "-"  # no PyTorch column without --against-pytorch
        assert float(r[7]) > 0 and float(r[8]) > 0 and r[9].endswith("%")
    assert "matmul" in lines[-1]
    payload = json.loads(out_json.read_text())
    assert payload["environment"]["backend"] == jax.default_backend()
    assert len(payload["rows"]) == 2
    fwd, grad = payload["rows"]
    assert grad["gflop_per_pair"] > fwd["gflop_per_pair"] > 0  # backward adds work
    assert len(fwd["jax_times"]) == 1 and fwd["matmul_gflops"] > 0


def test_bench_prints_bf16_against_float32(capsys):
    code = cli.main(["bench", "--models", "alex", "--workloads", "32x2", "--modes", "forward",
                     "--bf16", "--repeats", "1", "--warmup", "0", "--gap", "0",
                     "--matmul-size", "128", "--random-init"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    rows = {ln.split()[3]: float(ln.split()[4]) for ln in lines[2:] if not ln.startswith("#")}
    assert set(rows) == {"float32", "bfloat16"}
    ratio = [ln for ln in lines if ln.startswith("# bf16 / float32")]
    assert len(ratio) == 1
    assert ratio[0].startswith("# bf16 / float32 alex/shift_tolerant 32x32x2 forward: ")
    # The table's pairs/s are rounded to 2 decimals, the ratio from the unrounded values.
    assert float(ratio[0].split()[-1].rstrip("x")) == pytest.approx(
        rows["bfloat16"] / rows["float32"], rel=0.02, abs=0.01)
    assert "matmul" in lines[-1]


def test_bench_parse_and_errors():
    assert bench.parse_workloads("64x50, 256x4") == [(64, 50), (256, 4)]
    with pytest.raises(ValueError, match="SIDExBATCH"):
        bench.parse_workloads("64-50")
    with pytest.raises(ValueError, match="pretrained models"):
        bench._models("squeeze", "shift_tolerant")
    assert bench._models("alexnet,vgg", "all") == [("alex", "lpips"), ("alex", "shift_tolerant"),
                                                  ("vgg", "lpips"), ("vgg", "shift_tolerant")]


def test_bench_against_pytorch_missing_is_clear(monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch" or name.startswith("stlpips_pytorch"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RuntimeError, match=r"needs PyTorch.*shiftlpips-jax\[pytorch\]"):
        bench.import_reference()
    with pytest.raises(sl.ShiftLPIPSError):
        bench.import_reference()
    # The command line: one line naming the fix, exit status 2 (no traceback).
    code = cli.main(["bench", "--models", "alex", "--workloads", "32x1", "--random-init",
                     "--against-pytorch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("shiftlpips bench: error: --against-pytorch needs PyTorch")
    assert "Traceback" not in "\n".join(err)

