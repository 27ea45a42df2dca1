"""A YAML safe loader that refuses what PyYAML's ``safe_load`` silently accepts in a config file.

- A key repeated in one mapping: ``safe_load`` keeps the last value, so a second ``machines:``
  block dropped the first block's machines without a word. Merge keys (``<<: *base``) may still
  be overridden: that is what they are for.
- Nesting deeper than :data:`MAX_DEPTH`: the composer recurses per level, so ``[[[...]]]`` a few
  thousand deep raised a bare RecursionError. No plant file needs more than a handful of levels.
- A date that does not exist (``holidays: [2026-02-30]``): PyYAML raised a bare ValueError from
  deep in its constructor, a traceback instead of the line at fault.

All are reported as :class:`yaml.MarkedYAMLError`, with the line of the offending node.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

__all__ = ["MAX_DEPTH", "StrictSafeLoader", "load_yaml"]

MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictSafeLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                problem = f"nested deeper than {MAX_DEPTH} levels; a configuration never needs that"
                raise ComposerError(None, None, problem, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if earlier is not None:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {earlier}, again at line {line}); "
                    "only one can apply, so merge or remove one",
                    key_node.start_mark,
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except ValueError as exc:
            problem = f"{node.value!r} looks like a date but is none ({exc})"
            raise ConstructorError(None, None, problem, node.start_mark) from None


StrictSafeLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictSafeLoader.construct_yaml_timestamp)


def load_yaml(text: str) -> object:
    """The document in ``text``, like ``yaml.safe_load`` but strict (see the module docstring)."""
    loader = StrictSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
