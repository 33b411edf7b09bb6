"""Training: one (agent, dataset, task) run per seed into a resumable run directory.

- `settings`: RunSettings, the one place of `sorlab train`'s defaults; --set parsing (JAX-free)
- `runner`: the pure jitted chunk scan (root keys, chunk function, compile cache)
- `rundir`: the run directory while training (lock, logs, resume checks, checkpoint upkeep)
- `loop`: train / train_seeds as named steps; periodic evaluation is passed in as a callable
- `cli`: `sorlab train`, the one module that wires `sorlab.evaluation` into the loop

Nothing is imported here, so `sorlab.training.settings` stays JAX-free for the workflow.
"""
