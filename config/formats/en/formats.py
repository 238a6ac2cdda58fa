"""English date formats (see config/formats/__init__.py)."""

DATE_FORMAT = "F j, Y"
DATETIME_FORMAT = "N j, Y, H:i T"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
