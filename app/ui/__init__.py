"""The Qt layer: windows and widgets that observe the core and never compute pixels."""
