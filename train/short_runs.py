"""Shortened runs of the shipped recipes: the settings that make a recipe's first minutes a check
that it learns (tests/test_train.py holds the bars; benchmarks/threshold_figures.py measures them on a
machine). Kept beside the recipes so the test and the benchmark run the same thing."""

from __future__ import annotations

# maze-small-cpu for 20 steps on 500 generated mazes: the loss falls and the cells follow in about a
# minute on 2 cores (the full run is the shipped model).
SHORT_MAZE_RUN = ("--set", "data.generate.train=500", "--set", "data.generate.test=32",
                  "--set", "train.steps=20", "--set", "train.global_batch_size=32", "--set", "train.lr_warmup_steps=5",
                  "--set", "train.eval_interval=20", "--set", "train.eval_examples=32", "--set", "train.log_interval=5")
