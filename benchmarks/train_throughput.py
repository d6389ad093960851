"""Tokens per second of `models.training` against a bare PyTorch loop.

Both loops train the same `gpt` model (same seed) on the same batches with
the same AdamW parameter groups; the bare loop only does zero_grad, forward,
backward, step. The ratio (train / bare) is the share of throughput left
after `models.training`'s bookkeeping: the learning-rate schedule, divergence
checks, loss accounting and its ten evaluations on the fixed validation set.
Each loop runs `--repeats` times, alternating, and the fastest run counts.

    python benchmarks/train_throughput.py [--quick] [--device cpu]

Ends with ``RESULT train_loop_vs_bare=<worst ratio of the three scales>``.
"""

from __future__ import annotations

import argparse
import time

import torch

from models import ModelFamily, TrainConfig, get_family, train
from models.training import make_optimizer


def bare_tokens_per_second(family: ModelFamily, scale: str, config: TrainConfig) -> float:
    """The minimal loop: no schedule, no checks, no evaluation."""
    model = family.build(scale, config.seed).to(config.device)
    optimizer = make_optimizer(model, config)
    batches = family.batches("train", config.batch_size, config.seed)
    steps = -(-config.tokens // (config.batch_size * family.tokens_per_example))
    start = time.perf_counter()
    for _ in range(steps):
        inputs, targets = next(batches)
        loss = model(inputs.to(config.device), targets.to(config.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    float(loss.detach())
    return steps * config.batch_size * family.tokens_per_example / (time.perf_counter() - start)


def train_tokens_per_second(family: ModelFamily, scale: str, config: TrainConfig) -> float:
    result = train(family, scale, config)
    return result.tokens_seen / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer steps and one repeat")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--scales", default="13k,100k,336k", help="three gpt scales")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 200, quick 60)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per loop (default 3, quick 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = args.steps or (60 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    family = get_family("gpt")
    batch_size = 32
    tokens = steps * batch_size * family.tokens_per_example
    config = TrainConfig(lr=1e-3, batch_size=batch_size, tokens=tokens, grad_clip=None, device=args.device)

    print(f"gpt, batch {batch_size} × {family.tokens_per_example} tokens, {steps} steps, "
          f"best of {repeats}, {args.threads} thread(s), {args.device}")
    print(f"{'scale':>6} {'params':>10} {'bare tok/s':>11} {'train tok/s':>12} {'ratio':>6}")
    ratios = []
    for scale in args.scales.split(","):
        train_tokens_per_second(family, scale, config)  # warm caches and the corpus
        bare, loop = 0.0, 0.0
        for _ in range(repeats):
            bare = max(bare, bare_tokens_per_second(family, scale, config))
            loop = max(loop, train_tokens_per_second(family, scale, config))
        ratios.append(loop / bare)
        params = family.param_count(scale).total
        print(f"{scale:>6} {params:>10,} {bare:>11,.0f} {loop:>12,.0f} {loop / bare:>6.3f}")
    print(f"RESULT train_loop_vs_bare={min(ratios):.3f}")


if __name__ == "__main__":
    main()
