"""Aerial imagery for a coordinate: Web-Mercator tile maths, tile sources, crops and metre offsets."""
