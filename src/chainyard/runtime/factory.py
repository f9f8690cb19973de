"""Builds the runtime backend a server is configured with."""

from __future__ import annotations

from chainyard.config import ServerConfig
from chainyard.runtime.base import RuntimeBackend
from chainyard.runtime.simulated import SimulatedRuntime


class UnknownRuntime(ValueError):
    pass


def make_runtime(config: ServerConfig) -> RuntimeBackend:
    if config.runtime == "simulated":
        return SimulatedRuntime(
            build_delay=config.sim_build_delay,
            ready_delay=config.sim_ready_delay,
            fail_build=config.sim_fail_build,
            fail_deploy=config.sim_fail_deploy,
        )
    if config.runtime == "local":
        from chainyard.interpreters import Interpreters
        from chainyard.runtime.local import LocalRuntime

        return LocalRuntime(
            config.data_dir.resolve(),
            interpreters=Interpreters(config.pythons),
            install_apt=config.install_apt_packages,
            pass_env=config.pass_env,
            sandbox_mode=config.sandbox,
        )
    if config.sandbox == "required":
        raise UnknownRuntime(
            "--sandbox required is for the local runtime: a Ray cluster is one trust domain; "
            "give workspaces that must not share one separate clusters (docs/ray.md)"
        )
    if config.install_apt_packages:
        raise UnknownRuntime(
            "--install-apt-packages is for the local runtime; on Ray, put system packages in "
            "the nodes' image (docs/ray.md)"
        )
    if config.pythons and config.runtime == "ray":
        raise UnknownRuntime(
            "--python is for the local runtime; Ray replicas run on the nodes' Python (docs/ray.md)"
        )
    if config.runtime == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise UnknownRuntime("the ray runtime needs Ray: pip install 'chainyard[ray]'") from exc
        from chainyard.runtime.ray_backend import RayRuntime

        return RayRuntime(
            config.data_dir.resolve(),
            address=config.ray_address,
            unschedulable_timeout=config.ray_unschedulable_timeout,
            data_root=config.ray_data_dir,
            pass_env=config.pass_env,
            connect_timeout=config.ray_connect_timeout,
        )
    raise UnknownRuntime(f"unknown runtime '{config.runtime}' (simulated, local, ray)")
