"""OSM pre-labelling (SPEC §6): tag table, features, decision rule, Overpass client, extract reader, orchestration.

Entry point: :func:`annotator.osm.prelabel.prelabel_pairs`. This package module imports nothing, so the command
line can name the default endpoint in its help without loading the client.
"""

#: The public Overpass endpoint asked when no other is given.
DEFAULT_OVERPASS_URL = "https://overpass-api.de/api/interpreter"
