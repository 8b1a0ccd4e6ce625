"""Agents (PPO, DQN) built on torchrl components."""
