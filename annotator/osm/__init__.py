"""OSM pre-labelling (SPEC §6): tag table, features, decision rule, Overpass client, extract reader, orchestration.

Entry point: :func:`annotator.osm.prelabel.prelabel_pairs`.
"""
