"""repdyn's Hydra launchers (`hydra/launcher=slurm`, `hydra/launcher=local`); the logic is in `repdyn.launchers`.

Hydra only instantiates launcher classes defined under the `hydra_plugins` namespace package, hence this thin module.
"""

from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _plugin

from repdyn.launchers import CollectAllMixin


class SlurmLauncher(CollectAllMixin, _plugin.SlurmLauncher):
    """One Slurm job array per sweep, requeue on timeout/preemption, every failed member reported with its reason."""


class LocalLauncher(CollectAllMixin, _plugin.LocalLauncher):
    """The same protocol with local processes (submitit's local executor), no Slurm needed."""
