"""A chainlet that sets every image setting chainyard honours. The test copies this directory,
puts a wheel of `cy_tinypkg` beside it (named in requirements.txt) and fills in the URL of the
external data it serves."""

import os
import pathlib
import sys

import truss_chains as chains
from truss.base import truss_config

# Read when the module is imported: env_variables must be set before that, as on Baseten.
AT_IMPORT = os.environ.get("CY_GREETING")


@chains.mark_entrypoint("image-settings")
class Inspect(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        docker_image=chains.DockerImage(
            base_image=chains.BasetenImage.PY310,
            requirements_file=chains.make_abs_path_here("requirements.txt"),
            apt_requirements=["coreutils"],
            data_dir=chains.make_abs_path_here("assets"),
            external_package_dirs=[chains.make_abs_path_here("libs")],
        ),
        assets=chains.Assets(
            external_data=[
                truss_config.ExternalDataItem(
                    url="EXTERNAL_URL", local_data_path="downloaded/blob.txt"
                )
            ]
        ),
        options=chains.ChainletOptions(
            env_variables={"CY_GREETING": "hi"}, metadata={"owner": "search-team"}
        ),
    )

    def __init__(self, context: chains.DeploymentContext = chains.depends_context()) -> None:
        self._data = pathlib.Path(context.data_dir or ".")

    def run_remote(self) -> dict[str, str]:
        import cy_extpkg

        try:  # on Ray the test's requirements file has no local wheel (docs/ray.md)
            import cy_tinypkg
        except ImportError:
            cy_tinypkg = None

        return {
            "at_import": str(AT_IMPORT),
            "at_call": os.environ.get("CY_GREETING", ""),
            "data_dir": (self._data / "greeting.txt").read_text().strip(),
            "external_data": (self._data / "downloaded" / "blob.txt").read_text().strip(),
            "requirements_file": cy_tinypkg.VALUE if cy_tinypkg else "not installed",
            "external_package_dirs": cy_extpkg.VALUE,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        }
