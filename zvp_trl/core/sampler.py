# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The epoch order of TRL's `RepeatSampler`, reproducible by a resumed run on any number of processes."""

import math

import torch
from transformers import TrainerCallback
from trl.trainer.utils import RepeatSampler


class EpochSeededRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler`, with the shuffle order of epoch `e` a function of `(seed, e)` only.

    TRL's sampler draws each epoch's permutation from one generator that advances across epochs, so a run resumed in
    epoch `e > 0` (a fresh sampler) replays epoch 0's order and sees different prompts than the uninterrupted run.
    The Trainer calls `set_epoch(e)` before iterating each epoch, also when resuming: here it reseeds the generator
    and draws the `e` earlier permutations again, so every epoch's order is exactly the one TRL's sampler gives an
    uninterrupted run, and a resumed run draws the same prompts (which per-prompt state depends on).
    """

    @classmethod
    def from_sampler(cls, sampler: RepeatSampler) -> "EpochSeededRepeatSampler":
        new = cls.__new__(cls)
        new.__dict__.update(sampler.__dict__)
        return new

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):
                torch.randperm(self.num_samples, generator=self.generator)


class SamplerEpochCallback(TrainerCallback):
    """Gives the train sampler its epoch at the start of every epoch, from the trainer's state.

    transformers calls `set_epoch` through accelerate's dataloader, which does not reach the sampler in every layout:
    on several processes, the dataloader a resumed run skips into (accelerate's `SkipBatchSampler` around its
    `BatchSamplerShard`) never forwards it, so a run resumed mid-epoch on 2+ processes drew epoch 0's order for the
    rest of that epoch (other prompts than the uninterrupted run). At `on_epoch_begin`, before the epoch's dataloader
    is iterated, `floor(state.epoch)` is the epoch about to run (transformers' `state.epoch` is `epoch + (batch + 1) /
    batches_in_epoch`, exactly `epoch` at an epoch's end, and the checkpoint's value on resume); setting it again where
    `set_epoch` did arrive changes nothing.
    """

    def __init__(self, sampler: "EpochSeededRepeatSampler"):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.sampler.set_epoch(math.floor(state.epoch or 0))
