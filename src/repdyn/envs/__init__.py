"""Environments: ``repdyn.envs.make.make_env(env_cfg, seed)`` builds a batched torchrl env for a family (classic and
MuJoCo through gymnasium's vector env, ``gym_vector``; ALE through ale-py's, ``atari``); ``config`` holds the
``env`` schema. Nothing is imported here, so reading the schema does not load torchrl."""
