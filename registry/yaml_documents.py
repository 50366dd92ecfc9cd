"""YAML from uploaders, read without anchors and aliases.

PyYAML's SafeLoader builds no objects but still expands aliases: nine levels
of nine aliases are a few hundred bytes on disk and a billion strings once
anything walks them (str(), json.dumps). MLflow never writes either, so the
loader refuses both at the first one it meets, before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml


class AliasRefused(yaml.YAMLError):
    """The document uses an anchor or an alias."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            raise AliasRefused(
                f"uses YAML aliases or anchors (line {mark.line + 1}), which "
                "MLflow never writes"
            )
        return super().compose_node(parent, index)


def load_without_aliases(text: str) -> Any:
    """``yaml.safe_load`` for a document with no anchor and no alias."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
