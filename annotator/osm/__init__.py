"""OSM pre-labelling (SPEC §6): tag table, features, decision rule, Overpass client, extract reader, orchestration.

Entry point: :func:`annotator.osm.prelabel.prelabel_pairs`. This package module imports nothing, so the command
line can name the default endpoint in its help without loading the client.
"""

#: The public Overpass endpoint asked when no other is given.
DEFAULT_OVERPASS_URL = "https://overpass-api.de/api/interpreter"
#: The largest Overpass answer read, in bytes (``prelabel --max-response-mb``). A query for one 8 km cell of a dense
#: city with ``out meta geom`` is tens of MB; a larger answer means a wrong endpoint or a runaway query.
MAX_BODY_BYTES = 512 * 1024 * 1024
