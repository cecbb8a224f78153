"""Media -> corpus: transcripts, decoding (PyAV), voice activity, faces, active speaker, extractors, pipeline."""
