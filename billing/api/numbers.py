"""A decimal number in a request: a JSON string ("20.5") or number (20.5), as Lago's SDKs send
rates and units (the Python SDK types them as floats). Read as a Decimal from its shortest
text (repr of a float), never through binary arithmetic; a boolean, NaN or infinity is refused.
Ranges and precision are the services' to decide."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

NOT_A_NUMBER = 'must be a decimal number (a JSON number or a string such as "20.5")'
MAX_TEXT = 64


@extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string", "example": "20.5"}]})
class DecimalNumberField(serializers.Field[Decimal, Any, Any, Any]):
    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            raise serializers.ValidationError(NOT_A_NUMBER)
        text = repr(data) if isinstance(data, float) else str(data).strip()
        if not text or len(text) > MAX_TEXT:
            raise serializers.ValidationError(NOT_A_NUMBER)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise serializers.ValidationError(NOT_A_NUMBER) from None
        if not number.is_finite():
            raise serializers.ValidationError(NOT_A_NUMBER)
        return number

    def to_representation(self, value: Any) -> Any:
        return value
