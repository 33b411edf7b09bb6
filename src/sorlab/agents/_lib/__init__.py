"""Pieces the agents share, so that no agent module imports another.

- `envs`: OGBench environment families and the per-environment hyperparameter lookup;
- `config`: the hyperparameters most agents share, each written and commented once;
- `state`: the train state, the one Adam step, soft target updates, the batch check;
- `losses`: TD targets and losses, ensemble aggregation, the Q-maximisation loss, expectile and
  IQL losses, advantage weights;
- `critics`: the twin critic and value networks, the ensemble Q read-out, value metrics;
- `flow`: flow-matching pieces and Euler sampling;
- `gaussian`: log-densities and sampling of the Gaussian actor (networks.GaussianActor).

Where two agents' released code differs in a detail (an epsilon, a tie rule, a matching rule),
the helper takes that detail as an explicit argument and each agent passes its own.
"""
