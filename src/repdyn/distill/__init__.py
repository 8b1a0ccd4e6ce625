"""Post-training distillation, robustness probes and generalization tests (Lyle et al. 2022b, "Learning Dynamics and
Generalization in Reinforcement Learning", ICML, arXiv:2206.02126, §6 and App. D): distil a trained repdyn run (the
teacher) into a freshly initialised student and compare their returns, ranks and robustness. docs/distillation.md.

Modules: ``config`` (schema, checks), ``teacher`` / ``student`` (networks), ``data`` (teacher replay), ``objectives``
(the losses), ``probes`` (robustness), ``measures`` (what a record measures), ``variations`` / ``evaluate`` (held-out
envs, returns), ``loop`` (one run), ``cli`` (the Hydra app), ``report`` (teacher vs students across a sweep).
"""
