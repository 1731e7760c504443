"""Media and file formats, no database: audio, images, imagery sources and crops, offset clip windows, balancing
plans, the ADVANCE layout (format, sample writer, output folder), split, plots.

Imports nothing of ``annotator`` but the kernel (errors, vocabulary, files) and never ``model``.
"""
