#!/usr/bin/env python3
"""Reads a run's TensorBoard event files with TensorBoard itself and prints its scalars.

`vit train --tensorboard` writes TensorFlow event files of its own making
(examples/vit/tensorboard.cpp: protobuf + TFRecord framing with CRC-32C). This
script is the check that TensorBoard, not only our own reader
(tests/cli/tool_read_tfevents.cpp), takes them: it loads the directory with
tensorboard's EventAccumulator, as `tensorboard --logdir` does, and prints
every scalar series (tag, number of points, first and last step and value).
It fails when the files hold no scalars or lack the tags the trainer writes.

    python3 -m venv /tmp/tb && /tmp/tb/bin/pip install tensorboard
    /tmp/tb/bin/python benchmarks/tensorboard_check.py RUN_DIR [--ema]

RUN_DIR is the run directory (its tensorboard/ folder is read) or that folder.
--ema also requires the EMA's test curves (--model-ema).
"""
import argparse
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TRAIN_TAGS = ["train/loss", "train/top1", "train/lr", "train/img_per_s"]
EPOCH_TAGS = ["test/loss", "test/top1", "test/top5", "train/epoch_loss", "train/epoch_top1"]
EMA_TAGS = ["ema/test_loss", "ema/test_top1", "ema/test_top5"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--ema", action="store_true", help="require the EMA's test curves")
    args = ap.parse_args()
    logdir = args.run_dir
    if os.path.isdir(os.path.join(logdir, "tensorboard")):
        logdir = os.path.join(logdir, "tensorboard")
    files = sorted(f for f in os.listdir(logdir) if "tfevents" in f)
    if not files:
        sys.exit(f"tensorboard_check: no event files in {logdir}")
    print(f"{logdir}: {len(files)} event file(s): {', '.join(files)}")
    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in sorted(tags):
        events = acc.Scalars(tag)
        first, last = events[0], events[-1]
        steps = [e.step for e in events]
        print(f"  {tag:18s} {len(events):4d} points  steps {first.step}..{last.step}  "
              f"first {first.value:.6g}  last {last.value:.6g}  "
              f"{'increasing steps' if steps == sorted(set(steps)) else 'REPEATED OR UNORDERED STEPS'}")
    want = TRAIN_TAGS + EPOCH_TAGS + (EMA_TAGS if args.ema else [])
    missing = [t for t in want if t not in tags]
    if missing:
        sys.exit(f"tensorboard_check: missing tags {missing}")
    for tag in tags:
        steps = [e.step for e in acc.Scalars(tag)]
        if steps != sorted(set(steps)):
            sys.exit(f"tensorboard_check: {tag}: steps repeated or out of order: {steps}")
    print("ok: TensorBoard reads every tag the trainer writes")


if __name__ == "__main__":
    main()
