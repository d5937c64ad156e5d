"""Evaluation scaling: triplets/s of ``evaluate_2afc`` on 1, 2 and 4 devices, and the same numbers.

Writes ``--triplets`` 64x64 triplets (real photos, real distortions; tests/bapps_fixture.py) to a
temporary folder, then runs the evaluation (2AFC + crop-shift rank flips, compile excluded) in
one child process per device count, one after the other, each scoring ``--batch-size``
triplets per device and step. Prints triplets/s per device count and whether every distance
equals the 1-device run's (bit for bit).

On a CPU the devices are fake (``--xla_force_host_platform_device_count``): they share the same
cores, so there the script shows correctness only, not a speed-up. On a host with several GPUs
or TPU chips pass ``--real``: each child then scores on the first N of the real devices.

Usage::

    python benchmarks/eval_scaling.py                       # 1, 2, 4 fake CPU devices
    python benchmarks/eval_scaling.py --devices 1 2 4 8 --real --triplets 20000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def child(root: str, devices: int, batch_size: int, shifts: list[int]) -> dict:
    """One evaluation on the first ``devices`` local devices; returns rate and a digest."""
    import jax
    import numpy as np

    from shiftlpips_jax import data
    from shiftlpips_jax import evaluation as ev

    use = jax.local_devices()[:devices]
    if len(use) < devices:
        raise SystemExit(f"asked for {devices} devices; this host has {len(use)}")
    mesh = jax.make_mesh((devices,), ("data",), devices=use)
    source = data.read_2afc(root, ["val/traditional"], load_size=64)
    dist = ev.get_distance("alex")
    for _ in range(2):                    # the second run is timed (compile is excluded anyway)
        res = ev.evaluate_2afc(source, dist, shifts=tuple(shifts), batch_size=batch_size,
                               progress=False, workers=0, mesh=mesh)
    s = res.sets[0]
    arrays = [s.d0, s.d1] + [s.d0_shift[n] for n in sorted(s.d0_shift)] + \
        [s.d1_shift[n] for n in sorted(s.d1_shift)]
    digest = hashlib.sha256(b"".join(np.asarray(a, np.float32).tobytes() for a in arrays))
    return {"devices": devices, "platform": use[0].platform, "triplets": res.triplets,
            "seconds": res.seconds, "triplets_per_s": res.triplets_per_second,
            "data_wait_s": res.data_wait_seconds, "digest": digest.hexdigest()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0])
    p.add_argument("--triplets", type=int, default=192)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--batch-size", type=int, default=16, help="triplets per device and step")
    p.add_argument("--shifts", type=int, nargs="*", default=[1, 2, 3])
    p.add_argument("--real", action="store_true",
                   help="use the host's real devices (no fake CPU devices)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.devices[0], a.batch_size, a.shifts)))
        return 0
    from bapps_fixture import make_2afc
    with tempfile.TemporaryDirectory() as tmp:
        make_2afc(os.path.join(tmp, "2afc"), {"val/traditional": a.triplets}, size=64, seed=0)
        rows = []
        for n in a.devices:
            env = dict(os.environ)
            if not a.real:
                env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
                env["JAX_PLATFORMS"] = "cpu"
            cmd = [sys.executable, os.path.abspath(__file__), "--child",
                   os.path.join(tmp, "2afc"), "--devices", str(n), "--batch-size",
                   str(a.batch_size), "--shifts", *map(str, a.shifts)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stdout, out.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    kind = "fake CPU devices: correctness only" if not a.real else rows[0]["platform"]
    print(f"ST-LPIPS alex, {base['triplets']} triplets 64x64, shifts {a.shifts}, "
          f"{a.batch_size} triplets per device and step ({kind})")
    print(f"{'devices':>8}{'triplets/s':>12}{'speed-up':>10}{'same distances':>16}")
    for r in rows:
        print(f"{r['devices']:>8}{r['triplets_per_s']:>12.1f}"
              f"{r['triplets_per_s'] / base['triplets_per_s']:>9.2f}x"
              f"{'yes' if r['digest'] == base['digest'] else 'NO':>16}")
    return 0 if all(r["digest"] == base["digest"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
