"""Media and dataset building: audio, imagery, balancing, the ADVANCE layout, export, plots."""
