"""Where we call truss_chains' private API (pinned truss version, see pyproject), with
chains/stub_calls.py (a dependency's async call, which reads the stub's options and helpers).

truss_chains registers chainlet classes when they are defined and offers an importer that loads a
chain file and picks its entrypoint. We use those, and read each chainlet's descriptor: name,
dependencies, `remote_config` and the `run_remote` signature.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def imported_chain(path: pathlib.Path, entrypoint: str | None = None) -> Iterator[Any]:
    """Imports the chain file and yields the entrypoint class. The module stays imported (and its
    chainlets registered) only inside the block, as truss_chains' importer undoes it on exit."""
    from chainyard.chains import kinds

    with kinds.importer().import_target(path, entrypoint) as entry:
        yield entry


def descriptor(chainlet_cls: Any) -> Any:
    from truss_chains import framework

    return framework.get_descriptor(chainlet_cls)


def reachable_descriptors(entry_cls: Any) -> list[Any]:
    """The entrypoint and every chainlet it reaches, dependencies before their callers."""
    from truss_chains import framework

    ordered: list[Any] = []
    seen: set[Any] = set()

    def visit(desc: Any) -> None:
        if desc.chainlet_cls in seen:
            return
        seen.add(desc.chainlet_cls)
        for dep in framework.get_dependencies(desc):
            visit(dep)
        ordered.append(desc)

    visit(framework.get_descriptor(entry_cls))
    return ordered


def chainlet_facts(desc: Any) -> dict[str, Any]:
    """Plain facts about one chainlet, from its descriptor and `remote_config`."""
    config = desc.chainlet_cls.remote_config
    compute = config.get_compute_spec()
    assets = config.get_asset_spec()
    accelerator = compute.accelerator
    gpu = getattr(accelerator, "accelerator", None)
    gpu_name = getattr(gpu, "value", gpu)
    return {
        "name": desc.name,
        "display_name": desc.display_name,
        "is_entrypoint": bool(desc.chainlet_cls.meta_data.is_entrypoint),
        "dependencies": sorted({dep.name for dep in desc.dependencies.values()}),
        "cpu_count": compute.cpu_count,
        "memory": compute.memory,
        "gpu": str(gpu_name) if gpu_name else None,
        "gpu_count": int(accelerator.count) if gpu_name else 0,
        "predict_concurrency": int(compute.predict_concurrency),
        "pip_requirements": list(config.docker_image.pip_requirements or []),
        "secret_keys": sorted(assets.secrets.keys()),
        "chain_name": desc.chainlet_cls.meta_data.chain_name,
    }


def find_descriptor(name: str) -> Any:
    """The registered chainlet called `name` (inside `imported_chain`)."""
    from truss_chains import framework

    for desc in framework.get_ordered_descriptors():
        if desc.name == name:
            return desc
    raise LookupError(f"no chainlet named {name!r} in the chain")


def input_model(desc: Any) -> Any:
    """A pydantic model of `run_remote`'s arguments; optional arguments may be left out. A
    WebSocket endpoint takes no JSON arguments (chains/replica_ws.py serves it)."""
    import pydantic

    fields: dict[str, Any] = {}
    for arg in [] if desc.endpoint.is_websocket else desc.endpoint.input_args:
        fields[arg.name] = (arg.type.raw | None, None) if arg.is_optional else (arg.type.raw, ...)
    return pydantic.create_model(f"{desc.name}Input", **fields)


def output_model(desc: Any) -> Any:
    import pydantic

    outputs = [o.raw for o in desc.endpoint.output_types]
    root = outputs[0] if len(outputs) == 1 else tuple[tuple(outputs)]  # type: ignore[misc]
    return pydantic.RootModel[root]  # type: ignore[valid-type]


def streaming_read_timeout(desc: Any) -> float | None:
    """Seconds a streaming `run_remote` may take between two chunks (truss's
    `ChainletOptions.streaming_read_timeout`); None where it is unset."""
    options = getattr(desc.chainlet_cls.remote_config, "options", None)
    value = getattr(options, "streaming_read_timeout", None)
    return float(value) if value else None


def stub_class(dep_desc: Any) -> type:
    """A truss_chains stub for a dependency, named as the dependency (truss looks it up by name),
    whose `run_remote` (`predict` for a chains.ModelBase) mirrors the dependency's: sync, async or
    streaming."""
    import inspect

    from truss_chains.remote_chainlet import stub

    arguments_model = input_model(dep_desc)
    endpoint = dep_desc.endpoint
    signature = inspect.signature(getattr(dep_desc.chainlet_cls, endpoint.name))
    simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in signature.parameters.values())
    names = [name for name in signature.parameters if name != "self"]
    # The names left for keywords once the first n are given by position.
    rest = [frozenset(names[n:]) for n in range(len(names) + 1)]
    # An argument left out is sent as its default, as truss's generated stub sends it: the
    # dependency then runs with the caller's view of the default.
    defaults = {
        name: p.default
        for name, p in signature.parameters.items()
        if name != "self" and p.default is not p.empty
    }
    required = frozenset(names) - defaults.keys()

    def build_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if simple and len(args) <= len(names) and kwargs.keys() <= rest[len(args)]:
            given = dict(zip(names, args, strict=False))
            given.update(kwargs)
            if given.keys() >= required:
                # What `signature.bind` and `apply_defaults` give, at a tenth of their cost.
                return arguments_model(**{**defaults, **given})
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        bound.arguments.pop("self", None)
        return arguments_model(**bound.arguments)

    namespace: dict[str, Any] = {}
    if endpoint.is_streaming:
        from chainyard.chains.streaming import relay_dependency_stream

        as_text = endpoint.streaming_type.is_string

        async def run_remote_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
            inputs = build_inputs(args, kwargs)
            async for chunk in relay_dependency_stream(
                self, inputs, as_text=as_text, name=dep_desc.name
            ):
                yield chunk

        namespace[endpoint.name] = run_remote_stream
    else:
        result_model = output_model(dep_desc)
        if endpoint.is_async:

            async def run_remote_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                return (await self.predict_async(build_inputs(args, kwargs), result_model)).root

            namespace[endpoint.name] = run_remote_async
        else:

            def run_remote_sync(self: Any, *args: Any, **kwargs: Any) -> Any:
                return self.predict_sync(build_inputs(args, kwargs), result_model).root

            namespace[endpoint.name] = run_remote_sync
    _route_to_peers(namespace, stub.StubBase)
    namespace["predict_async"] = _predict_async
    return type(dep_desc.name, (stub.StubBase,), namespace)


async def _predict_async(self: Any, inputs: Any, output_model: Any = None) -> Any:
    """truss's `predict_async`, leaner (chains/stub_calls.py)."""
    from chainyard.chains import stub_calls

    data = await stub_calls.post(self, dict(self._make_request_params(inputs)))
    if output_model:
        return self._response_to_pydantic(data, output_model)
    return self._response_to_json(data)


def _route_to_peers(namespace: dict[str, Any], base: Any) -> None:
    """truss's `predict_*` post to `self._target_url` with the client that `_client_async()` /
    `_client_sync()` yield (inside truss's concurrency limit). These overrides yield it wrapped so
    that a post to the dependency goes to one of its ready replicas when the replica knows one
    (chains/direct_calls.py); tests/unit/test_direct_calls.py pins what this relies on."""
    from chainyard.chains import direct_calls

    @contextlib.asynccontextmanager
    async def _client_async(self: Any) -> Any:
        async with base._client_async(self) as client:
            table = direct_calls.table_for(self._target_url)
            if table is None:
                yield client
            else:
                timeout = float(self._service_descriptor.options.timeout_sec)
                yield direct_calls.RoutedAsyncClient(client, table, self._target_url, timeout)

    @contextlib.contextmanager
    def _client_sync(self: Any) -> Any:
        with base._client_sync(self) as client:
            table = direct_calls.table_for(self._target_url)
            if table is None:
                yield client
            else:
                timeout = float(self._service_descriptor.options.timeout_sec)
                yield direct_calls.RoutedSyncClient(client, table, self._target_url, timeout)

    namespace["_client_async"] = _client_async
    namespace["_client_sync"] = _client_sync


def build_chainlet(
    desc: Any,
    *,
    service_urls: dict[str, str],
    secrets: dict[str, str],
    environment: str | None,
    data_dir: pathlib.Path | None,
    chain_api_key: str,
    secret_keys: list[str] | None = None,
) -> Any:
    """Instantiates the chainlet with stubs for its dependencies, as a deployed chainlet is."""
    from truss_chains import framework, public_types
    from truss_chains.remote_chainlet import stub

    from chainyard.chains.secret_values import ChainletSecrets

    services = {
        dep.name: public_types.DeployedServiceDescriptor(
            name=dep.name,
            display_name=dep.display_name,
            options=dep.options,
            predict_url=service_urls[dep.name],
        )
        for dep in desc.dependencies.values()
    }
    context = public_types.DeploymentContext(
        chainlet_to_service=services,
        secrets=ChainletSecrets(
            {**secrets, public_types.CHAIN_API_KEY_SECRET_NAME: chain_api_key},
            declared=secret_keys if secret_keys is not None else secrets,
        ),
        environment=public_types.Environment(name=environment) if environment else None,
        data_dir=data_dir,
    )
    kwargs: dict[str, Any] = {
        arg: stub.factory(stub_class(framework.get_descriptor(dep.chainlet_cls)), context)
        for arg, dep in desc.dependencies.items()
    }
    if desc.has_context:
        kwargs["context"] = context
    return desc.chainlet_cls(**kwargs)


@contextlib.contextmanager
def request_context(headers: Any) -> Iterator[None]:
    """truss's request scope: propagates request ids to stub calls and turns an exception into
    `fastapi.HTTPException` carrying the chainlet error detail. The exception is logged here
    first, with its traceback, on the replica that raised it."""
    from truss_chains.remote_chainlet import utils

    from chainyard.chains import replica_logging

    with utils.predict_context(headers):
        try:
            yield
        except Exception as exc:
            replica_logging.log_run_remote_error(exc)
            raise


def set_fields(model: Any) -> dict[str, Any]:
    from truss_chains.remote_chainlet import utils

    result: dict[str, Any] = utils.pydantic_set_field_dict(model)
    return result


def msgpack_serialize(value: Any) -> bytes:
    """truss's msgpack format (needs msgpack-numpy, which needs numpy)."""
    from truss.templates.shared import serialization

    data: bytes = serialization.truss_msgpack_serialize(value)
    return data


def msgpack_deserialize(data: bytes) -> Any:
    from truss.templates.shared import serialization

    return serialization.truss_msgpack_deserialize(data)


def msgpack_serialize_without_numpy(value: Any) -> bytes:
    """truss's msgpack format for values without numpy arrays: its hooks for datetimes, decimals
    and UUIDs, with nothing chained after them."""
    import msgpack
    from truss.templates.shared import serialization

    data: bytes = msgpack.packb(value, default=serialization._truss_msgpack_encoder)
    return data


def msgpack_deserialize_without_numpy(data: bytes) -> Any:
    import msgpack
    from truss.templates.shared import serialization

    return msgpack.unpackb(data, object_hook=serialization._truss_msgpack_decoder)
