"""SCANN+ training throughput on CPU, old code against new code, side by side.

    python benchmarks/bench_cpu_speed.py                      # 3000 QM9 molecules, 5 rounds
    python benchmarks/bench_cpu_speed.py --molecules 1000 --rounds 3 --baseline def5109

The baseline commit is checked out into a temporary ``git worktree`` (removed at the
end). The same QM9 batches (the first ``--molecules`` molecules, shuffled with seed 0,
batch 64) are collated once with the baseline's code and saved as plain tensors, so only
the model code differs between the two trees. Two worker subprocesses then train the
reference-size SCANN+ (the QM9 configuration of ``bench_training.py``): one imports
``atomlens`` from the baseline tree, one from the working tree (``PYTHONPATH``). Both
start from the same seed and initial weights, take ``--warmup`` untimed steps, then
``--rounds`` timed passes over all batches. A step is forward + RMSE loss + backward +
gradient clipping + Adam, on ``--threads`` torch threads. The workers take turns of
``--chunk`` steps (only one computes at a time; which goes first alternates; a
``--pause`` before each turn lets the other worker's OpenMP threads stop spinning), so a
burst of load from other programs on the machine hits both.

Reported: the speed-up as the median over all timed steps of old step time / new step
time (the same batch, run by the two within about a second of each other, so the pair
sees the same machine load; this is the headline figure), each round's throughput
(molecules / summed step time) for old and new with their medians and the ratio of
those, and a best-of-rounds throughput (each batch's fastest step over the rounds). Both
workers also report eval-mode predictions on the first batch before training and their
first training losses, to show they compute the same thing. Results go to
``benchmarks/results/cpu_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The reference-size SCANN+ of the paper, as in the packaged QM9 configs (one definition).
QM9_MODEL = yaml.safe_load((ROOT / "src/atomlens/configs/qm9_homo.yaml").read_text())["model"]
BATCH_FIELDS = (
    "numbers",
    "graph_index",
    "centers",
    "neighbors",
    "distance",
    "solid_angle",
    "solid_angle_ratio",
    "num_atoms",
    "targets",
)


def prepare(molecules: int, batch_size: int, out: Path) -> None:
    """Collate the first ``molecules`` QM9 molecules into shuffled batches, saved as tensors."""
    import numpy as np
    import torch

    from atomlens.batching import collate
    from atomlens.datasets import GraphDataset, build_graph_cache, load_source

    source = load_source("qm9", targets=["homo"], limit=molecules)
    dataset = GraphDataset(build_graph_cache(source, workers=1, progress=False))
    order = np.random.default_rng(0).permutation(len(dataset))
    batches = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = collate(dataset, order[start : start + batch_size])
        batches.append({name: getattr(batch, name) for name in BATCH_FIELDS})
    torch.save(batches, out)


def worker(batches_file: Path, threads: int, seed: int) -> None:
    """Serve training steps on stdin/stdout with the ``atomlens`` found on ``sys.path``.

    Writes one JSON line when ready (import path, parameters, eval predictions on the
    first batch), then for each line ``<batch index>`` read, one training step and a JSON
    line with its time and loss. Stops at end of input.
    """
    import torch
    from torch.nn import functional as F  # noqa: N812

    import atomlens
    from atomlens.models.scann import Scann, ScannConfig

    torch.set_num_threads(threads)
    batches = []
    for tensors in torch.load(batches_file):
        batch = types.SimpleNamespace(**tensors)
        batch.num_graphs = int(tensors["num_atoms"].shape[0])
        batches.append(batch)
    torch.manual_seed(seed)
    model = Scann(ScannConfig(**QM9_MODEL))
    model.eval()
    with torch.no_grad():
        reference = model(batches[0])["prediction"].tolist()
    model.train()
    decay = [
        p
        for n, p in model.named_parameters()
        if n.endswith("weight") and p.dim() == 2 and "embedding" not in n
    ]
    rest = [p for p in model.parameters() if all(p is not q for q in decay)]
    optimizer = torch.optim.Adam(
        [{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=5e-4,
    )

    def reply(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply(
        {
            "atomlens": str(Path(atomlens.__file__).resolve()),
            "parameters": sum(p.numel() for p in model.parameters()),
            "eval_prediction_batch0": reference,
        }
    )
    for line in sys.stdin:
        batch = batches[int(line)]
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        prediction = model(batch)["prediction"]
        loss = torch.sqrt(F.mse_loss(prediction, batch.targets[:, 0]) + 1e-12)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        reply({"seconds": time.perf_counter() - start, "loss": float(loss.detach())})


class Worker:
    """A worker subprocess importing ``atomlens`` from ``src``."""

    def __init__(self, src: Path, batches: Path, threads: int):
        env = os.environ | {"PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads)}
        command = [sys.executable, __file__, "--worker", str(batches), "--threads", str(threads)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready = self._read()
        if not self.ready["atomlens"].startswith(str(src.resolve())):
            raise RuntimeError(f"worker for {src} imported {self.ready['atomlens']}")

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.process.wait()}")
        return json.loads(line)

    def step(self, index: int) -> dict:
        """One training step on batch ``index``; returns its time and loss."""
        self.process.stdin.write(f"{index}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """End the subprocess."""
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def relative_difference(a: list[float], b: list[float]) -> float:
    """Largest |a - b| over paired values, relative to the largest |a|."""
    scale = max(max(abs(x) for x in a), 1e-30)
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) / scale


def compare(args: argparse.Namespace) -> dict:
    """Old and new trees, step by step in turns, ``args.rounds`` rounds; the report."""
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="atomlens_speed_"))
    old_tree = tmp / "baseline"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(old_tree), args.baseline],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    workers: dict[str, Worker] = {}
    try:
        batches = tmp / "batches.pt"
        env = os.environ | {"PYTHONPATH": str(old_tree / "src")}
        prepare_args = ["--prepare", str(batches), "--molecules", str(args.molecules)]
        subprocess.run(
            [sys.executable, __file__, *prepare_args, "--batch-size", str(args.batch_size)],
            check=True,
            cwd=ROOT,
            env=env,
        )
        sizes = [int(b["num_atoms"].shape[0]) for b in torch.load(batches)]
        for name, src in (("old", old_tree / "src"), ("new", ROOT / "src")):
            workers[name] = Worker(src, batches, args.threads)
        losses: dict[str, list[float]] = {"old": [], "new": []}
        for index in range(min(args.warmup, len(sizes))):
            for name in ("old", "new"):
                losses[name].append(workers[name].step(index)["loss"])
        seconds: dict[str, list[list[float]]] = {"old": [], "new": []}
        turn = 0
        for round_ in range(args.rounds):
            for name in seconds:
                seconds[name].append([])
            for first in range(0, len(sizes), args.chunk):
                order = ("old", "new") if turn % 2 == 0 else ("new", "old")
                turn += 1
                for name in order:
                    time.sleep(args.pause)  # let the other worker's OpenMP threads go idle
                    for index in range(first, min(first + args.chunk, len(sizes))):
                        result = workers[name].step(index)
                        seconds[name][-1].append(result["seconds"])
                        losses[name].append(result["loss"])
            rates = {n: sum(sizes) / sum(seconds[n][-1]) for n in seconds}
            print(
                f"round {round_ + 1}/{args.rounds}: old {rates['old']:.1f}, "
                f"new {rates['new']:.1f} molecules/s",
                flush=True,
            )
    finally:
        for w in workers.values():
            w.close()
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False
        )
        shutil.rmtree(tmp, ignore_errors=True)
    per_round = {n: [sum(sizes) / sum(s) for s in seconds[n]] for n in seconds}
    medians = {n: statistics.median(per_round[n]) for n in per_round}
    fastest = {n: [min(step) for step in zip(*seconds[n], strict=True)] for n in seconds}
    best = {n: sum(sizes) / sum(fastest[n]) for n in seconds}
    step_ratios = [
        old / new
        for old_round, new_round in zip(seconds["old"], seconds["new"], strict=True)
        for old, new in zip(old_round, new_round, strict=True)
    ]
    return {
        "command": " ".join(["python", "benchmarks/bench_cpu_speed.py", *sys.argv[1:]]),
        "baseline_commit": args.baseline,
        "model": QM9_MODEL | {"batch_size": args.batch_size},
        "parameters": workers["new"].ready["parameters"],
        "molecules_per_round": sum(sizes),
        "steps_per_round": len(sizes),
        "warmup_steps": args.warmup,
        "threads": args.threads,
        "rounds": args.rounds,
        "steps_per_turn": args.chunk,
        "pause_between_turns_s": args.pause,
        "old_molecules_per_s": per_round["old"],
        "new_molecules_per_s": per_round["new"],
        "old_median": medians["old"],
        "new_median": medians["new"],
        "median_step_speedup": statistics.median(step_ratios),
        "speedup_of_medians": medians["new"] / medians["old"],
        "old_best_of_rounds": best["old"],
        "new_best_of_rounds": best["new"],
        "speedup_best_of_rounds": best["new"] / best["old"],
        "eval_prediction_max_rel_diff": relative_difference(
            workers["old"].ready["eval_prediction_batch0"],
            workers["new"].ready["eval_prediction_batch0"],
        ),
        "first_losses_old": losses["old"][:5],
        "first_losses_new": losses["new"][:5],
    }


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecules", "--limit", type=int, default=3000, dest="molecules")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=8, help="steps per turn")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between turns")
    parser.add_argument("--baseline", default="def5109")
    parser.add_argument("--output", type=Path, default=RESULTS / "cpu_speed.json")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.molecules, args.batch_size, args.prepare)
        return
    if args.worker:
        worker(args.worker, args.threads, seed=0)
        return
    report = compare(args)
    print(f"\n{'code':<6}{'median molecules/s':>20}{'best of rounds':>16}   per round")
    for name in ("old", "new"):
        rounds = " ".join(f"{r:.1f}" for r in report[f"{name}_molecules_per_s"])
        median, best = report[f"{name}_median"], report[f"{name}_best_of_rounds"]
        print(f"{name:<6}{median:>20.1f}{best:>16.1f}   {rounds}")
    print(
        f"speed-up: {report['median_step_speedup']:.2f}x (median per-step ratio); "
        f"{report['speedup_of_medians']:.2f}x (ratio of round medians), "
        f"{report['speedup_best_of_rounds']:.2f}x (best of rounds); eval predictions "
        f"max relative difference {report['eval_prediction_max_rel_diff']:.1e}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    from atomlens.files import write_json_atomic

    write_json_atomic(args.output, report, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
