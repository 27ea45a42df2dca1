"""Number types for configuration fields that refuse booleans.

Pydantic's lax mode reads ``True`` as 1 for an int or float field, and YAML 1.1 reads ``on``,
``yes`` and ``true`` as ``True``: ``oee_below: on`` became an OEE threshold of 100 %,
``allowed_lateness_s: yes`` one second of lateness. A boolean in a numeric field is always a
mistake, so it is refused; an int where a float is expected stays fine (``ideal_cycle_s: 12``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Count", "Number"]


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(
            f"must be a number, not the boolean {str(value).lower()} "
            "(YAML reads unquoted yes/no/on/off/true/false as booleans)"
        )
    return value


Number = Annotated[float, BeforeValidator(_not_bool)]
Count = Annotated[int, BeforeValidator(_not_bool)]
