"""Extract what nbchat's tests read from OpenAI's OpenAPI description: the operations on
``/chat/completions`` (create, and the stored completions' list, retrieve, update, delete,
messages) and every component schema they reach through ``$ref``.

The vendored file, ``tests/openapi/chat_completions.json``, was made with::

    git -C openai-openapi show f85dbe223d40e1a31cba812ab2d755c7e98a92a3:openapi.yaml > openapi.yaml
    python tests/openapi/extract.py openapi.yaml \\
        --commit f85dbe223d40e1a31cba812ab2d755c7e98a92a3 > tests/openapi/chat_completions.json

(the repository is github.com/openai/openai-openapi, branch ``main``). A later API version is
the same two commands with another commit; ``tests/test_openapi.py`` then checks nbchat's
protocol types against it. Reading YAML needs PyYAML (``pip install pyyaml``); a JSON copy
of the description (the repository has ``openapi.json`` too) needs nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/openai/openai-openapi"
PATHS = (
    "/chat/completions",
    "/chat/completions/{completion_id}",
    "/chat/completions/{completion_id}/messages",
)
# Documentation-site metadata: examples in several languages, not part of the schemas.
DROPPED = ("x-oaiMeta",)


def load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    import yaml  # only the maintainer who refreshes the file needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def _without(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without(v) for k, v in value.items() if k not in DROPPED}
    if isinstance(value, list):
        return [_without(v) for v in value]
    return value


def _references(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            found.append(ref)
        for item in value.values():
            _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)


def extract(spec: dict[str, Any], commit: str) -> dict[str, Any]:
    paths = {path: _without(spec["paths"][path]) for path in PATHS}
    components: dict[str, dict[str, Any]] = {}
    pending: list[str] = []
    _references(paths, pending)
    while pending:
        ref = pending.pop()
        _, _, section, name = ref.split("/", 3)
        if name in components.get(section, {}):
            continue
        target = _without(spec["components"][section][name])
        components.setdefault(section, {})[name] = target
        _references(target, pending)
    return {
        "x-nbchat-source": {
            "repository": REPOSITORY,
            "commit": commit,
            "url": f"{REPOSITORY}/blob/{commit}/openapi.yaml",
            "made-by": "tests/openapi/extract.py",
        },
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": paths,
        "components": {
            section: dict(sorted(schemas.items())) for section, schemas in components.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="openapi.yaml (or openapi.json)")
    parser.add_argument("--commit", required=True, help="the commit the file comes from")
    args = parser.parse_args()
    result = extract(load(args.spec), args.commit)
    # Dates in the YAML (example values) become text.
    json.dump(result, sys.stdout, indent=1, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
