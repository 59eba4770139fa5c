"""Command-line tools. Only this layer prints."""
