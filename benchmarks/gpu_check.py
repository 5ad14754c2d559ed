"""One-shot accelerator check: device tests, then SCANN+ fp32 vs bf16 on a QM9 subset.

    python benchmarks/gpu_check.py                         # on a CUDA machine (< 10 min)
    python benchmarks/gpu_check.py --device cpu --quick    # smoke test on a CPU (< 1 min)

Runs ``pytest -m device``, then trains the reference-size SCANN+ (embedding 48, local 128,
6 layers, 8 heads) on QM9 HOMO for a fixed number of epochs, once in fp32 and once in bf16
(same split, seed and data), and reports per-epoch time, training throughput (molecules/s),
peak accelerator memory, validation MAE, and how far bf16 inference moves the fp32 model's
predictions. Writes ``$OUT/gpu_check.json`` when ``OUT`` is set, else
``benchmarks/results/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from atomlens.config import validate_config
from atomlens.datasets import GraphDataset, Split
from atomlens.device import resolve_device
from atomlens.inference import load_model
from atomlens.training.trainer import predict_indices, train

ROOT = Path(__file__).parents[1]
# The reference-size SCANN+ of the paper, as in the packaged QM9 configs (one definition).
REFERENCE_MODEL = {"name": "scann"} | yaml.safe_load(
    (ROOT / "src/atomlens/configs/qm9_homo.yaml").read_text()
)["model"]


def run_device_tests(skip: bool) -> dict[str, Any]:
    """``pytest -m device`` in a subprocess: exit status and its summary line."""
    if skip:
        return {"skipped": True}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "device", "tests", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    print(result.stdout[-3000:], flush=True)
    return {
        "returncode": result.returncode,
        "summary": lines[-1] if lines else result.stderr[-500:],
        "seconds": round(time.perf_counter() - started, 1),
    }


def train_once(
    precision: str, args: argparse.Namespace, work: Path, device: torch.device
) -> dict[str, Any]:
    """Train the reference SCANN+ in one precision; per-epoch figures and peak memory."""
    n_val = max(args.limit // 10, 10)
    raw = {
        "run_dir": str(work / f"run_{precision}"),
        "data": {
            "source": "qm9",
            "target": "homo",
            "limit": args.limit,
            "cache_dir": str(args.cache_dir),
            "split": {"train": args.limit - 2 * n_val, "val": n_val, "test": n_val, "seed": 0},
        },
        "model": REFERENCE_MODEL,
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "eval_batch_size": 512,
            "lr": 5e-4,
            "scheduler": "constant",
            "patience": 1000,
            "max_minutes": args.max_minutes,
            "seed": 0,
            "device": str(device),
            "precision": precision,
            "threads": args.threads,
        },
    }
    config = validate_config(raw, "gpu_check")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    run = train(config, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    epoch_seconds = [float(r["epoch_seconds"]) for r in rows]
    rates = [float(r["structures_per_s"]) for r in rows]
    steady = rates[1:] or rates  # the first epoch includes warm-up (kernels, allocator)
    summary = json.loads((run / "training_summary.json").read_text())
    return {
        "precision": precision,
        "run_dir": str(run),
        "epochs": len(rows),
        "stopped": summary["stopped"],
        "epoch_seconds": epoch_seconds,
        "molecules_per_s": rates,
        "molecules_per_s_steady_median": float(np.median(steady)),
        "val_mae_per_epoch": [float(r["val_mae"]) for r in rows],
        "best_val_mae": summary["best_val_mae"],
        "train_loss_last": float(rows[-1]["train_loss"]),
        "peak_memory_allocated_mib": None if peak is None else round(peak / 2**20, 1),
        "total_seconds": round(seconds, 1),
    }


def precision_effect(run: Path, device: torch.device) -> dict[str, Any]:
    """The fp32-trained model's validation predictions in fp32 vs under bf16 autocast."""
    predictor = load_model(run, checkpoint="last", device=device)
    dataset = GraphDataset(predictor.metadata["cache_entry"])
    val = Split.load(run / "split.json").val
    fp32 = predict_indices(predictor.model, dataset, val, predictor.scaling, 512, "fp32")
    bf16 = predict_indices(predictor.model, dataset, val, predictor.scaling, 512, "bf16")
    target = np.asarray(dataset.targets[val, 0])
    difference = np.abs(bf16 - fp32)
    return {
        "n": int(val.size),
        "mean_abs_difference": float(difference.mean()),
        "max_abs_difference": float(difference.max()),
        "val_mae_fp32_inference": float(np.abs(fp32 - target).mean()),
        "val_mae_bf16_inference": float(np.abs(bf16 - target).mean()),
        "unit": predictor.unit,
    }


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the device's name."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(
            torch.cuda.get_device_properties(device).total_memory / 2**30, 1
        )
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, cpu, auto")
    parser.add_argument("--quick", action="store_true", help="tiny subset: a CPU smoke test")
    parser.add_argument("--limit", type=int, default=None, help="QM9 molecules (default 20000)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per precision (4)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-minutes", type=float, default=3.0, help="cap per training run")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m device")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "atomlens")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    args.limit = args.limit or (200 if args.quick else 20000)
    args.epochs = args.epochs or (2 if args.quick else 4)
    device = resolve_device(args.device)
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "results"
    out = args.out or out_dir / "gpu_check.json"

    started = time.perf_counter()
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "environment": environment(device),
        "setup": {
            "data": f"QM9 HOMO, first {args.limit} molecules (80/10/10 split, seed 0)",
            "model": REFERENCE_MODEL,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "quick": args.quick,
        },
    }
    report["device_tests"] = run_device_tests(args.skip_tests)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        runs = {p: train_once(p, args, Path(tmp), device) for p in ("fp32", "bf16")}
        for result in runs.values():
            print(
                f"{result['precision']}: {result['molecules_per_s_steady_median']:.0f} "
                f"molecules/s, epochs {result['epoch_seconds']} s, best val MAE "
                f"{result['best_val_mae']:.4f}, peak memory "
                f"{result['peak_memory_allocated_mib']} MiB",
                flush=True,
            )
        report["bf16_vs_fp32"] = {
            "throughput_ratio": runs["bf16"]["molecules_per_s_steady_median"]
            / runs["fp32"]["molecules_per_s_steady_median"],
            "best_val_mae_difference": runs["bf16"]["best_val_mae"] - runs["fp32"]["best_val_mae"],
            "inference_of_fp32_model": precision_effect(Path(runs["fp32"].pop("run_dir")), device),
        }
        runs["bf16"].pop("run_dir")
        report["training"] = runs
    report["seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    ratio = report["bf16_vs_fp32"]["throughput_ratio"]
    print(f"bf16/fp32 throughput {ratio:.2f}; wrote {out} ({report['seconds']:.0f} s)")
    tests = report["device_tests"]
    return 0 if tests.get("skipped") or tests["returncode"] in (0, 5) else 1


if __name__ == "__main__":
    raise SystemExit(main())
