"""Plain code (no Dagster) that turns windows of the world into delivered data: encode, write a window, read back."""
