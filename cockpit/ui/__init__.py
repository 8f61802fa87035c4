"""The Textual cockpit. Only this package imports textual."""
