"""The resource agent (issue #19). Being written."""
