"""Simulation from a model and the evidence of its data (the seed's 19.4.4).

- :mod:`.values`: the model's expressions at values, for many draws at once;
- :mod:`.density`: log p(x | θ) of every distribution, elementwise;
- :mod:`.joint`: log p(v, h) of a model at values, per draw and per data point;
- :mod:`.inputs`: what a simulation starts from (sizes, constants, covariates, params);
- :mod:`.ancestral`: prior and posterior predictive draws (``ppvi sample``);
- :mod:`.evidence`: importance-sampled log p(v) with q as the proposal (``ppvi evidence``);
- :mod:`.pareto`: Pareto k̂ of importance weights;
- :mod:`.checks`: posterior predictive checks (a statistic of the data against its replicates).
"""
