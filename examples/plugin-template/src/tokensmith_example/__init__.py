"""A template tokensmith plugin. Copy this folder to start your own."""
