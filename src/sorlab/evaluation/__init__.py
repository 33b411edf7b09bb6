"""Evaluation: a policy in the real OGBench environments, knowing nothing of training.

- `envpool`: env slots, env worker processes (`python -m sorlab.evaluation.envpool`), pools
- `policy`: check_inference, policy_fn, evaluate_policy, record_videos
- `cli`: `sorlab evaluate` (opens a run through `sorlab.checkpoints`)

This package never imports `sorlab.training`; training/cli.py passes `evaluate_policy` to the
training loop. Nothing is imported here.
"""
