"""How the admin writes dates and times in English: day, month, year, and the time with its zone.

Django's own English formats ("Dec. 6, 2026, 2:03 p.m.") name no time zone, and staff in
several places read the same timeline: every time shown says which zone it is in (settings
TIME_ZONE), e.g. "06 Dec 2026 14:03 UTC".
"""

DATE_FORMAT = "d M Y"
DATETIME_FORMAT = "d M Y H:i T"
SHORT_DATETIME_FORMAT = "d M Y H:i T"
TIME_FORMAT = "H:i"
