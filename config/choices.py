"""Vocabularies (charge models, line kinds, statuses, …) as plain Python enums with labels.

Each vocabulary is defined once, in a pure module of the app that owns it, and used by the
pure code (the pricing engine, the catalog parser) and by the models' `choices` alike. Django's
`TextChoices` cannot serve both: the engine may not import Django (DESIGN §7). `Choices` is the
same idea in plain Python: members are strings (`ChargeModel.GRADUATED == "graduated"`) with a
label, and the class offers `.choices`, `.values` and `.labels` as `TextChoices` does, so model
fields, forms and serializers take it unchanged. Migrations write a member as its plain value,
as they do for `TextChoices` (metering.apps registers the serializer).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import EnumType, StrEnum


class _ChoicesType(EnumType):
    # EnumType.__iter__ is typed for `type[Enum]`, not for the metaclass's own `cls`; naming the
    # members' type (every class of this metaclass is a `Choices`) types the loops below.

    @property
    def choices(cls) -> list[tuple[str, str]]:
        members: Iterable[Choices] = cls
        return [(member.value, member.label) for member in members]

    @property
    def values(cls) -> list[str]:
        members: Iterable[Choices] = cls
        return [member.value for member in members]

    @property
    def labels(cls) -> list[str]:
        members: Iterable[Choices] = cls
        return [member.label for member in members]


class Choices(StrEnum, metaclass=_ChoicesType):
    """A string enum whose members are declared as `NAME = "value", "Label"`."""

    label: str

    def __new__(cls, value: str, label: str = "") -> Choices:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or value.replace("_", " ").capitalize()
        return member

    def __str__(self) -> str:
        return self.value
