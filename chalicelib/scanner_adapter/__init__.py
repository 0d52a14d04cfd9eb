"""The built-in scanner adapter ("osv-lite"): a separate application speaking the Pluggable Scanner
API, which pulls an image from the registry, lists what is installed in it and matches that against
an OSV database the operator supplies. See docs/scanning.md."""
