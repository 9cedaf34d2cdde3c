"""The JSON Schema of the routing rules file (YAML or JSON; docs/routing.md).

The schema checks the shape; `worker.routing.loader` then checks what a schema cannot: DICOM
keywords against pydicom's dictionary, regular expressions, SOP class names, duplicate names,
unreachable rules. `python -m worker.routing.schema` prints it (for editors and CI).
"""

from __future__ import annotations

import json
from typing import Any

VALUE: dict[str, Any] = {"type": ["string", "number"]}
VALUES: dict[str, Any] = {"type": "array", "minItems": 1, "items": VALUE}


def _only(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly the one property `key`."""
    return {"type": "object", "required": [key], "additionalProperties": False,
            "properties": {key: schema}}


RULES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "medstream routing rules",
    "type": "object",
    "required": ["version", "rules"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1, "description": "version of the rules language"},
        "rules": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/rule"}},
    },
    "$defs": {
        "rule": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                "description": {"type": "string"},
                "when": {"$ref": "#/$defs/condition"},
                "route": {"oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "object", "required": ["model"], "additionalProperties": False,
                     "properties": {"model": {"type": "string", "minLength": 1},
                                    "version": {"type": ["string", "integer"]}}},
                ]},
                "skip": {"type": "string", "minLength": 1},
            },
            "oneOf": [{"required": ["route"]}, {"required": ["skip"]}],
        },
        "condition": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "all": {"type": "array", "items": {"$ref": "#/$defs/condition"}},
                "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
                "not": {"$ref": "#/$defs/condition"},
            },
            "additionalProperties": {"$ref": "#/$defs/test"},
        },
        "test": {"oneOf": [
            VALUE,
            VALUES,
            _only("in", VALUES),
            _only("regex", {"type": "string", "minLength": 1}),
            _only("present", {"type": "boolean"}),
            {"type": "object", "minProperties": 1, "additionalProperties": False,
             "properties": {"min": {"type": "number"}, "max": {"type": "number"}}},
        ]},
    },
}


if __name__ == "__main__":
    print(json.dumps(RULES_SCHEMA, indent=2))
