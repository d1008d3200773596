"""Every Dash component id, in one module (never type an id as a string literal elsewhere)."""

LOCATION = "gw-location"
PAGE = "gw-page"
OVERVIEW_MAP = "gw-overview-map"
OVERVIEW_COUNTS = "gw-overview-counts"
OVERVIEW_STREETS = "gw-overview-streets"
