"""The tutorial's example LightMem plugin."""
