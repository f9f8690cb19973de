"""Structural comparison of our JSON schemas / OpenAPI document with Baseten's published spec.

The checks are about what travels on the wire: property names, required-ness, types, nullability,
enum values, formats, defaults, numeric/length bounds, closed objects, array items and nested
objects. Titles, descriptions and examples are ignored. ``$ref``s are resolved in each document
separately, so component names may differ between the two (FastAPI, for instance, may call a
component ``Foo-Input``).

Problems come back as human-readable strings prefixed with the path of the offending node, e.g.
``ChainV1.created_at: format: spec 'date-time', ours None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.contract import wire_facts

Schema = dict[str, Any]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Keywords that bound a value. Only keywords that change which values are accepted belong here.
_BOUNDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
)

# The published spec answers GET /v1/chains/{chain_id}/environments with the *model* environment
# list (EnvironmentsV1); what chains actually return is a list of ChainEnvironmentV1. Compare that
# endpoint against the corrected shape instead.
ENVIRONMENTS_QUIRK_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "environments": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ChainEnvironmentV1"},
        }
    },
    "required": ["environments"],
}
_RESPONSE_QUIRKS: dict[tuple[str, str, str], Schema] = {
    (
        "get",
        "/v1/chains/{}/environments",
        "#/components/schemas/EnvironmentsV1",
    ): ENVIRONMENTS_QUIRK_SCHEMA,
}


def load_reference_spec() -> Schema:
    """The wire facts of Baseten's management spec, as stored in the repository
    (`tests/contract/wire_facts.py`): present in every clone, so no contract test skips."""
    return wire_facts.load(wire_facts.MANAGEMENT)


# --------------------------------------------------------------------------------------------
# $ref handling


def _lookup(doc: Schema, ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = doc
    for raw in ref[1:].split("/"):
        if raw == "":
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise KeyError(f"unresolvable $ref {ref!r}")
    return node


def _resolve(doc: Schema, schema: Schema) -> tuple[Schema, str | None]:
    """Follow ``$ref`` chains and single-member ``allOf`` wrappers.

    Keywords written next to a ``$ref`` (a default, a description) are kept and win over the
    target's, which is how both OpenAPI 3.1 and pydantic use them. Returns the last ref followed.
    """
    last_ref: str | None = None
    seen: set[str] = set()
    while True:
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                raise ValueError(f"$ref cycle through {ref!r}")
            seen.add(ref)
            target = _lookup(doc, ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
            last_ref = ref
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            siblings = {k: v for k, v in schema.items() if k != "allOf"}
            schema = {**schema["allOf"][0], **siblings}
        else:
            return schema, last_ref


def _alternatives(doc: Schema, schema: Schema) -> tuple[bool, list[Schema]]:
    """Split a schema into (accepts null, non-null alternatives).

    Understands ``anyOf``/``oneOf`` with a ``{"type": "null"}`` member, ``type`` lists and the
    OpenAPI 3.0 ``nullable`` flag. An alternative is returned unresolved when possible so that
    its ``$ref`` name stays available for matching and cycle detection.
    """
    resolved, _ = _resolve(doc, schema)
    typ = resolved.get("type")
    if typ == "null":
        return True, []
    if isinstance(typ, list) and "null" in typ:
        rest = [t for t in typ if t != "null"]
        if not rest:
            return True, []
        return True, [{**resolved, "type": rest[0] if len(rest) == 1 else rest}]
    if resolved.get("nullable") is True:
        return True, [{k: v for k, v in resolved.items() if k != "nullable"}]
    union = resolved.get("anyOf", resolved.get("oneOf"))
    if isinstance(union, list):
        nullable = False
        alternatives: list[Schema] = []
        for member in union:
            member_nullable, member_alts = _alternatives(doc, member)
            nullable = nullable or member_nullable
            alternatives.extend(member_alts)
        return nullable, alternatives
    return False, [schema]


def _ref_name(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _enum_values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _type_of(schema: Schema) -> Any:
    typ = schema.get("type")
    if typ is not None:
        return sorted(typ) if isinstance(typ, list) else typ
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    values = _enum_values(schema)
    if values and all(isinstance(v, str) for v in values):
        return "string"
    return None


def _same_value(a: Any, b: Any) -> bool:
    """JSON equality: 50 equals 50.0 (FastAPI writes bounds as floats) but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


# --------------------------------------------------------------------------------------------
# schema comparison


@dataclass
class _Comparison:
    ref_doc: Schema
    our_doc: Schema
    # Pairs of refs being compared further up the stack: a recursive schema would otherwise
    # recurse forever. Only pairs *in progress* are skipped, never ones already finished.
    in_progress: set[tuple[str, str]] = field(default_factory=set)

    def compare(self, theirs: Schema, ours: Schema, path: str, out: list[str]) -> None:
        """Compare two schemas at one node: default, nullability, then the alternatives."""
        t_res, _ = _resolve(self.ref_doc, theirs)
        o_res, _ = _resolve(self.our_doc, ours)
        if "default" in t_res:
            if "default" not in o_res:
                # FastAPI writes its OpenAPI document with exclude_none, which drops every
                # "default": null; an omitted optional field reads as null either way.
                if t_res["default"] is not None:
                    out.append(f"{path}: default: spec {t_res['default']!r}, ours has none")
            elif not _same_value(t_res["default"], o_res["default"]):
                out.append(f"{path}: default: spec {t_res['default']!r}, ours {o_res['default']!r}")

        t_null, t_alts = _alternatives(self.ref_doc, theirs)
        o_null, o_alts = _alternatives(self.our_doc, ours)
        if t_null != o_null:
            out.append(f"{path}: nullable: spec {t_null}, ours {o_null}")
        if not t_alts or not o_alts:
            if t_alts != o_alts:
                out.append(f"{path}: one side only accepts null")
            return
        if len(t_alts) == 1 and len(o_alts) == 1:
            self.compare_single(t_alts[0], o_alts[0], path, out)
            return
        # A union in the spec: ours may offer fewer alternatives, but each of ours must be one
        # of theirs, or we could send (or demand) something a Baseten client never sees.
        for index, o_alt in enumerate(o_alts):
            label = _ref_name(o_alt) or f"#{index}"
            name = _ref_name(o_alt)
            candidates = sorted(t_alts, key=lambda t: _ref_name(t) != name)
            best: list[str] | None = None
            for t_alt in candidates:
                attempt: list[str] = []
                self.compare_single(t_alt, o_alt, f"{path}<{label}>", attempt)
                if not attempt:
                    break
                if best is None or len(attempt) < len(best):
                    best = attempt
            else:
                out.append(f"{path}: our alternative {label} matches none of the spec's")
                out.extend(best or [])

    def compare_single(self, theirs: Schema, ours: Schema, path: str, out: list[str]) -> None:
        """Compare two non-null, non-union schemas."""
        t_res, t_ref = _resolve(self.ref_doc, theirs)
        o_res, o_ref = _resolve(self.our_doc, ours)
        key = (t_ref, o_ref) if t_ref is not None and o_ref is not None else None
        if key is not None:
            if key in self.in_progress:
                return
            self.in_progress.add(key)
        try:
            self._compare_resolved(t_res, o_res, path, out)
        finally:
            if key is not None:
                self.in_progress.discard(key)

    def _compare_resolved(self, t_res: Schema, o_res: Schema, path: str, out: list[str]) -> None:
        t_enum = _enum_values(t_res)
        if t_enum is not None:
            o_enum = _enum_values(o_res)
            if o_enum is None:
                out.append(f"{path}: spec restricts values to {t_enum}, ours does not")
            else:
                missing = [v for v in t_enum if not any(_same_value(v, o) for o in o_enum)]
                if missing:
                    out.append(f"{path}: enum values missing from ours: {missing}")

        t_type, o_type = _type_of(t_res), _type_of(o_res)
        if t_type is None:
            return  # the spec accepts anything here
        if t_type != o_type:
            out.append(f"{path}: type: spec {t_type!r}, ours {o_type!r}")
            return

        if "format" in t_res and o_res.get("format") != t_res["format"]:
            out.append(f"{path}: format: spec {t_res['format']!r}, ours {o_res.get('format')!r}")
        for keyword in _BOUNDS:
            if keyword in t_res or keyword in o_res:
                t_val, o_val = t_res.get(keyword), o_res.get(keyword)
                if not _same_value(t_val, o_val):
                    out.append(f"{path}: {keyword}: spec {t_val!r}, ours {o_val!r}")

        if t_type == "object":
            self._compare_object(t_res, o_res, path, out)
        elif t_type == "array" and isinstance(t_res.get("items"), dict):
            o_items = o_res.get("items")
            if not isinstance(o_items, dict):
                out.append(f"{path}: spec gives array items a schema, ours does not")
            else:
                self.compare(t_res["items"], o_items, f"{path}[]", out)

    def _compare_object(self, t_res: Schema, o_res: Schema, path: str, out: list[str]) -> None:
        t_props: dict[str, Schema] = t_res.get("properties", {})
        o_props: dict[str, Schema] = o_res.get("properties", {})
        t_req = set(t_res.get("required", []))
        o_req = set(o_res.get("required", []))
        for name, t_prop in t_props.items():
            where = f"{path}.{name}"
            if name not in o_props:
                out.append(f"{where}: missing from ours")
                continue
            if (name in t_req) != (name in o_req):
                out.append(f"{where}: required: spec {name in t_req}, ours {name in o_req}")
            self.compare(t_prop, o_props[name], where, out)
        for name in sorted(set(o_props) - set(t_props)):
            if name in o_req:
                out.append(f"{path}.{name}: required by ours, unknown to the spec")

        t_extra, o_extra = t_res.get("additionalProperties"), o_res.get("additionalProperties")
        if t_extra is False and o_extra is not False:
            out.append(f"{path}: spec rejects unknown properties, ours accepts them")
        elif o_extra is False and t_extra is not False:
            out.append(f"{path}: ours rejects unknown properties, the spec accepts them")
        elif isinstance(t_extra, dict) and t_extra:
            if isinstance(o_extra, dict):
                self.compare(t_extra, o_extra, f"{path}{{*}}", out)
            else:
                out.append(f"{path}: spec gives map values a schema, ours does not")


def compare_schemas(
    ref_spec: Schema, ref_schema: Schema, our_spec: Schema, our_schema: Schema, path: str
) -> list[str]:
    """Return the incompatibilities of ``our_schema`` (in ``our_spec``) with ``ref_schema``.

    ``ref_spec``/``our_spec`` are the documents their ``$ref``s resolve against. An empty list
    means compatible.
    """
    out: list[str] = []
    _Comparison(ref_spec, our_spec).compare(ref_schema, our_schema, path, out)
    return out


# --------------------------------------------------------------------------------------------
# OpenAPI comparison


def normalize_path(path: str) -> str:
    """Blank out path parameter names: ``/v1/chains/{chain_id}`` -> ``/v1/chains/{}``."""
    normalized = re.sub(r"\{[^}/]+\}", "{}", path)
    return normalized.rstrip("/") or "/"


def _deref(doc: Schema, node: Any) -> Any:
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"$ref cycle through {ref!r}")
        seen.add(ref)
        node = _lookup(doc, ref)
    return node


def _json_schema_of(doc: Schema, holder: Any) -> Schema | None:
    holder = _deref(doc, holder)
    if not isinstance(holder, dict):
        return None
    for media_type, media in holder.get("content", {}).items():
        if media_type.split(";")[0].strip() == "application/json" and "schema" in media:
            schema: Schema = media["schema"]
            return schema
    return None


def _success_response(operation: Schema) -> Any:
    responses = operation.get("responses", {})
    return responses.get("200", responses.get(200))


def _query_params(doc: Schema, path_item: Schema, operation: Schema) -> dict[str, Schema]:
    params: dict[str, Schema] = {}
    for raw in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        param = _deref(doc, raw)
        if isinstance(param, dict) and param.get("in") == "query":
            params[param["name"]] = param
    return params


def compare_openapi(
    reference: Schema,
    ours: Schema,
    paths_prefixes: tuple[str, ...],
    *,
    check_query_params: bool = False,
) -> list[str]:
    """Check that ``ours`` serves every operation of ``reference`` under ``paths_prefixes``.

    For each operation: it exists (path parameters may be named differently), its JSON request
    body is compatible, ours does not demand a body where the spec has none, and the JSON schema
    of the 200 answer is compatible. With ``check_query_params``, every query parameter of the
    spec must exist in ours and not be required by ours when the spec leaves it optional.
    """
    problems: list[str] = []
    our_paths: dict[str, Schema] = {
        normalize_path(p): item for p, item in ours.get("paths", {}).items()
    }
    for ref_path, ref_item in reference.get("paths", {}).items():
        if not ref_path.startswith(paths_prefixes):
            continue
        norm = normalize_path(ref_path)
        our_item = our_paths.get(norm)
        if our_item is None:
            problems.append(f"{ref_path}: path missing from ours")
            continue
        for method in HTTP_METHODS:
            ref_op = ref_item.get(method)
            if ref_op is None:
                continue
            where = f"{method.upper()} {ref_path}"
            our_op = our_item.get(method)
            if our_op is None:
                problems.append(f"{where}: operation missing from ours")
                continue
            problems.extend(_compare_request(reference, ours, ref_op, our_op, where))
            problems.extend(_compare_response(reference, ours, ref_op, our_op, method, norm, where))
            if check_query_params:
                ref_query = _query_params(reference, ref_item, ref_op)
                our_query = _query_params(ours, our_item, our_op)
                problems.extend(_compare_query_params(ref_query, our_query, where))
    return problems


def _compare_request(
    reference: Schema, ours: Schema, ref_op: Schema, our_op: Schema, where: str
) -> Iterable[str]:
    ref_body = _json_schema_of(reference, ref_op.get("requestBody"))
    our_body_holder = _deref(ours, our_op.get("requestBody"))
    if ref_body is None:
        if isinstance(our_body_holder, dict) and our_body_holder.get("required"):
            yield f"{where}: ours requires a request body the spec does not define"
        return
    our_body = _json_schema_of(ours, our_body_holder)
    if our_body is None:
        yield f"{where}: ours takes no JSON request body"
        return
    yield from compare_schemas(reference, ref_body, ours, our_body, f"{where} request")


def _compare_response(
    reference: Schema,
    ours: Schema,
    ref_op: Schema,
    our_op: Schema,
    method: str,
    norm_path: str,
    where: str,
) -> Iterable[str]:
    ref_schema = _json_schema_of(reference, _success_response(ref_op))
    if ref_schema is None:
        return
    quirk = _RESPONSE_QUIRKS.get((method, norm_path, ref_schema.get("$ref", "")))
    if quirk is not None:
        ref_schema = quirk
    our_response = _success_response(our_op)
    if our_response is None:
        yield f"{where}: ours has no 200 response"
        return
    our_schema = _json_schema_of(ours, our_response)
    if our_schema is None:
        yield f"{where}: ours has no JSON schema for the 200 response"
        return
    yield from compare_schemas(reference, ref_schema, ours, our_schema, f"{where} 200")


def _compare_query_params(
    ref_params: dict[str, Schema], our_params: dict[str, Schema], where: str
) -> Iterable[str]:
    for name, ref_param in ref_params.items():
        our_param = our_params.get(name)
        if our_param is None:
            yield f"{where}: query parameter {name!r} missing from ours"
        elif our_param.get("required") and not ref_param.get("required"):
            yield f"{where}: query parameter {name!r} is required by ours, optional in the spec"
