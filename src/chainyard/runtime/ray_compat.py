"""The one place that calls Ray's private API (pinned Ray version, see pyproject's `ray` extra).

A per-actor runtime_env takes only URIs for `working_dir`, not local folders (those are uploaded
for a whole job at `ray.init`). A chain deployment's source is already a checked .tar.gz archive,
so we put it into the cluster's GCS under a content-addressed `gcs://` URI, the way Ray uploads a
job's working_dir, and every node's runtime-env agent downloads and unpacks it from there.
"""

from __future__ import annotations

import pathlib


def source_uri(archive: pathlib.Path) -> str:
    # Archives are stored under their SHA-256: the name is the content address.
    digest = archive.name.split(".")[0]
    return f"gcs://_ray_pkg_chainyard_{digest}.tar.gz"


def ship_source(archive: pathlib.Path) -> tuple[str, bool]:
    """Makes the archive available to the cluster's nodes; returns its URI and whether it was
    uploaded now (False: the cluster had it)."""
    from ray._private.runtime_env import packaging

    uri = source_uri(archive)
    # Ray deletes a package once nothing references it; the pin holds it (10 minutes) until the
    # actor about to be created references it.
    packaging.pin_runtime_env_uri(uri)
    if packaging.package_exists(uri):
        return uri, False
    packaging.upload_package_to_gcs(uri, archive.read_bytes())
    return uri, True
