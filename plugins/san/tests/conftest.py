"""Test settings: one intra-op thread by default (the CI box has 2 cores shared by several
jobs, where OpenMP's spinning threads make tiny CPU ops 10x slower); override with
REID_TEST_THREADS."""

import os

import torch

torch.set_num_threads(int(os.environ.get("REID_TEST_THREADS", "1")))
