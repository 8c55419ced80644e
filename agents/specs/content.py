"""The content agent (issue #19). Being written."""
