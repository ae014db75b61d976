"""``segohem-predict``: image files in (files.py), the run (run.py), output formats (formats.py)."""
