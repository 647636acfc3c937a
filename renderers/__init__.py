"""Renderers: cameras and rays, ray marching, volume rendering, mesh extraction."""

__all__: list[str] = []
