"""Verified outputs: what a final answer must satisfy (`format`, `checks`), as failures a model
can act on. A `format` schema is itself a check: Ollama constrains the sampling, but a reply cut
off by `num_predict` is still invalid JSON (REFERENCE-2 F.5)."""

from __future__ import annotations

import json
import re
from typing import Any

from cockpit.core.spec import AgentSpec

NO_JSON = object()


def verdict(spec: AgentSpec, text: str) -> tuple[list[str], Any]:
    """(failures, the answer's JSON value or NO_JSON). No failures: the answer passes."""
    failures: list[str] = []
    checks = spec.checks
    schemas = [s for s in (spec.format if isinstance(spec.format, dict) else None,
                           checks.json_schema if checks else None) if s is not None]
    wants_json = spec.format is not None or bool(schemas) or bool(checks and checks.json_)
    value: Any = NO_JSON
    if wants_json:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            failures.append(f"the answer is not valid JSON ({error.msg} at line {error.lineno}, "
                            f"column {error.colno}); answer with the JSON value only")
    if value is not NO_JSON:
        failures += [f"the JSON does not match the schema: {problem}"
                     for schema in schemas for problem in _schema_problems(schema, value)]
    if checks is not None:
        if checks.matches is not None and not re.search(checks.matches, text):
            failures.append(f"the answer must match the pattern {checks.matches!r}")
        if checks.excludes is not None and (found := re.search(checks.excludes, text)):
            failures.append(f"the answer must not contain {found.group(0)!r} "
                            f"(pattern {checks.excludes!r})")
        if checks.min_length is not None and len(text) < checks.min_length:
            failures.append(f"the answer is {len(text)} characters; it must have at least "
                            f"{checks.min_length}")
        if checks.max_length is not None and len(text) > checks.max_length:
            failures.append(f"the answer is {len(text)} characters; it may have at most "
                            f"{checks.max_length}")
    return failures, value


def _schema_problems(schema: dict[str, Any], value: Any, limit: int = 5) -> list[str]:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        problems.append(f"at {where}: {error.message}")
        if len(problems) == limit:
            break
    return problems
