"""The .tz format: the container, modalities and layouts, the method table, content detection and
transcoding. Pure Python with numpy; it never imports torch or the engine."""
