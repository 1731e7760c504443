"""The offline demo corpus (SPEC §5 `annotator demo`): recordings, a tile pyramid and an OSM extract that agree."""
